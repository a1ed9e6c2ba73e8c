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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::dataplane::DataplaneError;

    /// A dataplane that only remembers what it was told.
    #[derive(Default)]
    struct Recorder {
        state: Mutex<NodeNatState>,
        removed: Mutex<bool>,
    }

    impl Dataplane for Recorder {
        fn apply(&self, _: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
            *self.state.lock().unwrap() = state.clone();
            Ok(())
        }
        fn remove(&self, _: &Netns) -> Result<(), DataplaneError> {
            *self.removed.lock().unwrap() = true;
            Ok(())
        }
        fn dump(&self, _: &Netns) -> Result<String, DataplaneError> {
            Ok(format!("{:?}", self.state.lock().unwrap()))
        }
        fn read(&self, _: &Netns) -> Result<NodeNatState, DataplaneError> {
            Ok(self.state.lock().unwrap().clone())
        }
    }

    fn exchange(requests: &[&str], own_conntrack: bool) -> (Recorder, Vec<Response>) {
        let recorder = Recorder::default();
        let options = ServeOptions {
            name: "recorder".into(),
            own_conntrack,
        };
        let input = requests.join("\n");
        let mut output = Vec::new();
        serve(&recorder, &options, input.as_bytes(), &mut output).unwrap();
        let answers = String::from_utf8(output)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (recorder, answers)
    }

    #[test]
    fn a_whole_session_is_answered_in_order() {
        let (recorder, answers) = exchange(
            &[
                r#"{"id":1,"type":"hello","protocol":1,"harness":"test","timeout_ms":1000}"#,
                r#"{"id":2,"type":"topology","node":"node-a","uplink":{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","addresses":["198.18.0.10"]},"pods":[]}"#,
                r#"{"id":3,"type":"apply","ipv4":{"dnat":[{"external":"203.0.113.10","internal":"198.19.0.5"}],"snat":[]},"ipv6":{"dnat":[],"snat":[]}}"#,
                r#"{"id":4,"type":"dump"}"#,
                r#"{"id":5,"type":"shutdown","keep":false}"#,
                r#"{"id":6,"type":"dump"}"#,
            ],
            false,
        );
        let kinds: Vec<(u64, &str)> = answers.iter().map(|a| (a.id, a.body.kind())).collect();
        // Nothing is answered after shutdown.
        assert_eq!(
            kinds,
            [(1, "hello"), (2, "ok"), (3, "ok"), (4, "dump"), (5, "ok")]
        );
        let ResponseBody::Hello(hello) = &answers[0].body else {
            panic!()
        };
        assert!(!hello.capabilities.owns_conntrack);
        let ResponseBody::Dump(dump) = &answers[3].body else {
            panic!()
        };
        let mappings = dump.mappings.as_ref().unwrap();
        assert_eq!(mappings.ipv4.dnat[0].internal.to_string(), "198.19.0.5");
        assert_eq!(dump.json["topology"]["node"], "node-a");
        assert!(
            *recorder.removed.lock().unwrap(),
            "shutdown without keep removes"
        );
    }

    #[test]
    fn garbage_and_refusals_are_answered_as_errors_on_their_id() {
        let (recorder, answers) = exchange(
            &[
                r#"{"id":1,"type":"hello","protocol":2,"harness":"test","timeout_ms":1000}"#,
                r#"{"id":2,"type":"teleport"}"#,
                "not json",
                r#"{"id":4,"type":"flush","rules":[{"match":"any"}]}"#,
                r#"{"id":5,"type":"shutdown","keep":true}"#,
            ],
            false,
        );
        let kinds: Vec<(u64, &str)> = answers.iter().map(|a| (a.id, a.body.kind())).collect();
        assert_eq!(
            kinds,
            [
                (1, "error"),
                (2, "error"),
                (0, "error"),
                (4, "error"),
                (5, "ok")
            ]
        );
        assert!(
            !*recorder.removed.lock().unwrap(),
            "keep leaves the node as it is"
        );
    }
}
