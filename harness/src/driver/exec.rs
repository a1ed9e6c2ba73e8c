//! [`ExecDataplane`]: a vendor's program as the dataplane of every node, one
//! process per node started on first use (the runner sends each node's
//! topology as soon as the lab is up, so that is at the start of a case),
//! spoken to over the driver protocol.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::DriverError;
use super::protocol::{DumpAnswer, Family, Flush, FlushRule, NatState, RequestBody, ResponseBody};
use super::session::{Session, Start};
use super::spec::ExecSpec;
use crate::calico::IpFamily;
use crate::dataplane::harness_filter::HarnessFilter;
use crate::dataplane::Features;
use crate::dataplane::{
    conntrack, ConntrackMatch, Dataplane, DataplaneError, NodeNatState, NodeTopology,
};
use crate::lab::daemons::lab_dir;
use crate::lab::netns::{Netns, LAB_PREFIX};
use crate::lab::spec::lab_of_namespace;
use crate::traffic::Protocol;

/// How long each answer may take unless [`TIMEOUT_ENV`] says otherwise: far
/// above what a driver needs to program a node even on a loaded machine,
/// short enough that a hung driver fails its case in reasonable time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds (fractions allowed) each driver answer may take.
pub const TIMEOUT_ENV: &str = "FIP_HARNESS_DRIVER_TIMEOUT";

type Shared = Arc<Mutex<Session>>;

/// The driver `spec` on every node of one case.
pub struct ExecDataplane {
    spec: ExecSpec,
    timeout: Duration,
    /// Felix's workload dispatch and NAT-outgoing, which a driver does not
    /// program: the harness's own table (docs/driver-protocol.md).
    filter: HarnessFilter,
    /// By namespace name.
    sessions: Mutex<BTreeMap<String, Shared>>,
}

impl ExecDataplane {
    pub fn new(spec: ExecSpec) -> Self {
        let timeout = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_TIMEOUT);
        ExecDataplane {
            spec,
            timeout,
            filter: HarnessFilter::default(),
            sessions: Mutex::default(),
        }
    }

    /// The driver of `netns`, started (as `node`, or the member part of the
    /// namespace's name) if it is not running yet.
    fn session(&self, netns: &Netns, node: Option<&str>) -> Result<Shared, DataplaneError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = sessions.get(netns.name()) {
            return Ok(Arc::clone(session));
        }
        let lab = lab_of_namespace(netns.name());
        let member = lab
            .map(|lab| &netns.name()[LAB_PREFIX.len() + lab.len() + 1..])
            .unwrap_or(netns.name());
        let session = Session::start(Start {
            spec: &self.spec,
            netns,
            node: node.unwrap_or(member),
            timeout: self.timeout,
            lab_dir: lab.map(lab_dir),
        })
        .map_err(boxed)?;
        let session = Arc::new(Mutex::new(session));
        sessions.insert(netns.name().to_string(), Arc::clone(&session));
        Ok(session)
    }

    fn request(&self, netns: &Netns, body: RequestBody) -> Result<ResponseBody, DataplaneError> {
        let session = self.session(netns, None)?;
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        session.request(body).map_err(boxed)
    }

    fn dump_answer(&self, netns: &Netns) -> Result<DumpAnswer, DataplaneError> {
        match self.request(netns, RequestBody::Dump)? {
            ResponseBody::Dump(answer) => Ok(answer),
            _ => unreachable!("the session checks the answer's type"),
        }
    }

    fn all(&self) -> Vec<Shared> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.values().cloned().collect()
    }
}

fn boxed(error: Box<DriverError>) -> DataplaneError {
    DataplaneError::Driver(error)
}

impl Dataplane for ExecDataplane {
    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        self.request(node, RequestBody::Apply(NatState::from(state)))?;
        self.filter
            .apply(node, state.filter.as_ref(), Features::detected())
    }

    /// An empty `apply`: the node holds no floating-IP NAT.
    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.apply(node, &NodeNatState::default())?;
        self.filter.remove(node)
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        Ok(self.dump_answer(node)?.text)
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        match self.dump_answer(node)?.mappings {
            Some(mappings) => Ok(NodeNatState::from(&mappings)),
            None => Err(DataplaneError::Unreadable {
                netns: node.name().to_string(),
                reason: "the driver's dump has no `mappings`".into(),
            }),
        }
    }

    fn wants_topology(&self) -> bool {
        true
    }

    fn topology(&self, node: &Netns, topology: &NodeTopology) -> Result<(), DataplaneError> {
        let session = self.session(node, Some(&topology.node))?;
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        session
            .request(RequestBody::Topology(topology.clone()))
            .map(|_| ())
            .map_err(boxed)
    }

    /// The driver's own flush when it owns its flow state, else the kernel's
    /// conntrack table, as for any netfilter backend.
    fn flush(&self, node: &Netns, rules: &[ConntrackMatch]) -> Result<usize, DataplaneError> {
        let session = self.session(node, None)?;
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        if !session.hello().capabilities.owns_conntrack {
            drop(session);
            return conntrack::flush_kernel(node, rules).map_err(|source| {
                DataplaneError::Conntrack {
                    netns: node.name().to_string(),
                    source,
                }
            });
        }
        let flush = Flush {
            rules: rules.iter().map(FlushRule::from).collect(),
        };
        match session.request(RequestBody::Flush(flush)).map_err(boxed)? {
            ResponseBody::Flushed { deleted } => Ok(deleted),
            _ => unreachable!("the session checks the answer's type"),
        }
    }

    fn unsupported(&self, families: &[IpFamily], protocols: &[Protocol]) -> Vec<String> {
        let Some(session) = self.all().into_iter().next() else {
            return Vec::new();
        };
        let session = session.lock().unwrap_or_else(|e| e.into_inner());
        let capabilities = &session.hello().capabilities;
        let mut missing = Vec::new();
        for family in families {
            if !capabilities.families.contains(&Family::of(*family)) {
                missing.push(Family::of(*family).to_string());
            }
        }
        for protocol in protocols {
            if !capabilities.protocols.contains(protocol) {
                missing.push(protocol.to_string());
            }
        }
        missing
            .into_iter()
            .map(|what| format!("{} does not translate {what}", session.label()))
            .collect()
    }

    fn health(&self) -> Result<(), DataplaneError> {
        for session in self.all() {
            let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
            session.health().map_err(boxed)?;
        }
        Ok(())
    }

    fn diagnostics(&self, node: &Netns) -> Vec<(String, String)> {
        let session = {
            let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.get(node.name()).cloned()
        };
        let Some(session) = session else {
            return Vec::new();
        };
        let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
        let mut files = vec![("driver-stderr.txt".to_string(), session.stderr())];
        match session.request(RequestBody::Dump) {
            Ok(ResponseBody::Dump(dump)) => {
                files.push(("driver-dump.txt".into(), dump.text));
                let json = serde_json::to_string_pretty(&dump.json).unwrap_or_default();
                files.push(("driver-dump.json".into(), json));
                // The NAT the driver read back: `state` of a kept lab shows
                // its floating IPs as held (the driver is gone by then).
                if let Some(mappings) = &dump.mappings {
                    let json = serde_json::to_string_pretty(mappings).unwrap_or_default();
                    files.push(("driver-mappings.json".into(), json));
                }
            }
            Ok(_) => {}
            Err(error) => files.push(("driver-dump.txt".into(), format!("# {error}\n"))),
        }
        files
    }

    fn shutdown(&self, keep: bool) -> Result<(), DataplaneError> {
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        let mut first_error = None;
        for session in sessions.into_values() {
            let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = session.shutdown(keep) {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(boxed(error)),
            None => Ok(()),
        }
    }
}
