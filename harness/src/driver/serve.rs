//! The driver's side of the protocol for a built-in dataplane: `fip-harness
//! driver <backend>` reads requests on stdin and answers on stdout, running
//! the backend in the namespace it was started in (the harness starts it
//! inside the node). It proves the protocol carries everything a backend
//! needs: the catalogue gives the same results through it as in-process.

use std::io::{BufRead, Write};

use serde_json::json;

use super::protocol::{
    Capabilities, DumpAnswer, Family, HelloAnswer, NatState, Request, RequestBody, Response,
    ResponseBody, PROTOCOL_VERSION,
};
use crate::dataplane::{conntrack, ConntrackMatch, Dataplane, NodeNatState, NodeTopology};
use crate::lab::netns::Netns;
use crate::traffic::Protocol;

/// How a built-in backend is served.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The name `hello` answers with.
    pub name: String,
    /// Announce `owns_conntrack` and carry out `flush` here (on the kernel's
    /// table of this namespace): exercises the protocol's flush, which the
    /// harness otherwise does itself.
    pub own_conntrack: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reading requests: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing answers: {0}")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Netns(#[from] crate::lab::netns::NetnsError),
}

/// Answer requests from `input` on `output` until `shutdown` or the end of
/// input (the harness went: the node's state is left as it is).
pub fn serve(
    dataplane: &dyn Dataplane,
    options: &ServeOptions,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<(), ServeError> {
    let node = Netns::current()?;
    let mut topology: Option<NodeTopology> = None;
    for line in input.lines() {
        let line = line.map_err(ServeError::Read)?;
        if line.trim().is_empty() {
            continue;
        }
        let (id, body) = match serde_json::from_str::<Request>(&line) {
            Ok(request) => (request.id, request.body),
            Err(error) => {
                // Answer on the id if there is one, so the harness reports
                // this rather than a hang.
                let id = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["id"].as_u64())
                    .unwrap_or(0);
                let message = format!("not a request of protocol {PROTOCOL_VERSION}: {error}");
                answer(&mut output, id, ResponseBody::Error { message })?;
                continue;
            }
        };
        let shutdown = matches!(body, RequestBody::Shutdown(_));
        let reply = handle(dataplane, options, &node, &mut topology, body)
            .unwrap_or_else(|message| ResponseBody::Error { message });
        answer(&mut output, id, reply)?;
        if shutdown {
            break;
        }
    }
    Ok(())
}

fn answer(output: &mut impl Write, id: u64, body: ResponseBody) -> Result<(), ServeError> {
    let line = serde_json::to_string(&Response { id, body }).expect("answers serialise");
    writeln!(output, "{line}")
        .and_then(|()| output.flush())
        .map_err(ServeError::Write)
}

fn handle(
    dataplane: &dyn Dataplane,
    options: &ServeOptions,
    node: &Netns,
    topology: &mut Option<NodeTopology>,
    body: RequestBody,
) -> Result<ResponseBody, String> {
    let text = |e: crate::dataplane::DataplaneError| e.to_string();
    match body {
        RequestBody::Hello(hello) if hello.protocol != PROTOCOL_VERSION => Err(format!(
            "this driver speaks protocol {PROTOCOL_VERSION}, not {}",
            hello.protocol
        )),
        RequestBody::Hello(_) => Ok(ResponseBody::Hello(HelloAnswer {
            protocol: PROTOCOL_VERSION,
            name: options.name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            capabilities: Capabilities {
                families: vec![Family::Ipv4, Family::Ipv6],
                protocols: Protocol::ALL.to_vec(),
                owns_conntrack: options.own_conntrack,
            },
        })),
        RequestBody::Topology(new) => {
            // Netfilter keys on addresses: the topology is only kept for the dump.
            *topology = Some(new);
            Ok(ResponseBody::Ok)
        }
        RequestBody::Apply(nat) => dataplane
            .apply(node, &NodeNatState::from(&nat))
            .map(|()| ResponseBody::Ok)
            .map_err(text),
        RequestBody::Flush(_) if !options.own_conntrack => {
            Err("this driver said it does not own conntrack; the harness flushes it".into())
        }
        RequestBody::Flush(flush) => {
            let rules: Vec<ConntrackMatch> = flush.rules.iter().map(ConntrackMatch::from).collect();
            conntrack::flush_kernel(node, &rules)
                .map(|deleted| ResponseBody::Flushed { deleted })
                .map_err(|e| e.to_string())
        }
        RequestBody::Dump => {
            let rules = dataplane.dump(node).map_err(text)?;
            let mappings = NatState::from(&dataplane.read(node).map_err(text)?);
            Ok(ResponseBody::Dump(DumpAnswer {
                json: json!({ "topology": topology, "mappings": mappings }),
                text: rules,
                mappings: Some(mappings),
            }))
        }
        RequestBody::Shutdown(shutdown) => {
            if !shutdown.keep {
                dataplane.remove(node).map_err(text)?;
            }
            Ok(ResponseBody::Ok)
        }
    }
}
