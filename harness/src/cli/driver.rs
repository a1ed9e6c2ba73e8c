//! `fip-harness driver <backend>`: a built-in backend served over the driver
//! protocol on stdin/stdout, for `--dataplane "exec:fip-harness driver
//! <backend>"`. The harness starts it inside a node; it programs the node it
//! runs in.

use std::process::ExitCode;

use fip_harness::dataplane::{backend, BackendKind};
use fip_harness::driver::{serve, ServeOptions};

use super::choices::Backend;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backend to serve.
    #[arg(value_enum)]
    backend: Backend,
    /// Say `owns_conntrack` in `hello` and carry out the harness's `flush`
    /// requests here, on this namespace's conntrack table.
    #[arg(long)]
    own_conntrack: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let kind = BackendKind::from(args.backend);
    let options = ServeOptions {
        name: format!("fip-harness-driver-{kind}"),
        own_conntrack: args.own_conntrack,
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    serve(backend(kind).as_ref(), &options, stdin, stdout)?;
    Ok(ExitCode::SUCCESS)
}
