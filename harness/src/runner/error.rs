//! What stops a case's step (or the case) other than a failed expectation:
//! one type, so whose fault it is (the harness and its lab, or a dataplane
//! driver under test) is read from the error itself rather than from a flag
//! set beside it. The texts are the ones a person reads in the step's message
//! and the case's reason.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::bgp::{BgpError, BirdError};
use crate::calico::cluster::{ExpectationMismatch, StepRefused};
use crate::control::ControlError;
use crate::dataplane::DataplaneError;
use crate::lab::LabError;
use crate::traffic::TrafficError;
use crate::vocab::IpFamily;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The lab: namespaces, links, pods, routes of a member.
    #[error("{0}")]
    Lab(#[from] LabError),
    #[error("building the lab: {0}")]
    Build(#[source] LabError),
    #[error("wiring the pod: {0}")]
    Wiring(#[source] LabError),
    #[error("tearing down: {0}")]
    Teardown(#[source] LabError),
    /// The traffic engine: endpoints, probes, streams.
    #[error("{0}")]
    Traffic(#[from] TrafficError),
    #[error("sending: {0}")]
    Send(#[source] TrafficError),
    #[error("starting stream: {0}")]
    StartStream(#[source] TrafficError),
    #[error("stopping stream: {0}")]
    StopStream(#[source] TrafficError),
    #[error("stream `{0}` is not running")]
    StreamNotRunning(String),
    /// A counted wait whose stream did not send its packets in time.
    #[error(
        "waiting for {packets} packets of stream `{stream}`: it sent {reached} within {within:?}"
    )]
    PacketWaitTimedOut {
        stream: String,
        packets: u32,
        reached: u64,
        within: Duration,
    },
    /// A counted wait whose stream's sender ended before its packets.
    #[error(
        "waiting for {packets} packets of stream `{stream}`: its sender ended after {reached}"
    )]
    PacketWaitEnded {
        stream: String,
        packets: u32,
        reached: u64,
    },
    /// The step's outcome in the Calico model is not the one it expects.
    #[error("{0}")]
    Expectation(#[from] ExpectationMismatch),
    #[error("{0}")]
    Refused(#[from] StepRefused),
    #[error("`{name}` has no {family:?} address in this lab")]
    NoAddress { name: String, family: IpFamily },
    #[error("{0}")]
    UnknownAddress(IpAddr),
    /// The dataplane itself; [`DataplaneError::Driver`] is the fault of the
    /// dataplane under test.
    #[error("{0}")]
    Dataplane(#[source] DataplaneError),
    #[error("ending the dataplane: {0}")]
    EndDataplane(#[source] DataplaneError),
    /// The control plane; a driver's error inside is the dataplane's fault.
    #[error("control plane: {0}")]
    Control(#[source] ControlError),
    #[error("the dataplane cannot run this scenario: {}", .0.join("; "))]
    Unsupported(Vec<String>),
    #[error("starting BIRD: {0}")]
    StartBird(#[source] Box<BgpError>),
    #[error("taking over BIRD: {0}")]
    AdoptBird(#[source] Box<BgpError>),
    #[error("{0}")]
    StopBird(#[source] Box<BgpError>),
    /// A BIRD that is no longer running, with its log.
    #[error("{0}")]
    Bird(#[from] BirdError),
    #[error("routing blocks of {node} with BIRD: {source}")]
    RouteBlocks { node: String, source: Box<BgpError> },
    #[error("BIRD did not withdraw {floating_ip} from a node that no longer hosts it: {source}")]
    NotWithdrawn {
        floating_ip: IpAddr,
        source: Box<BgpError>,
    },
    #[error("BIRD did not agree with the route model within {waited:?}: {}", .left.join("; "))]
    Unsettled { waited: Duration, left: Vec<String> },
    /// A step number people gave that the scenario does not have.
    #[error("scenario {scenario} has steps 1 to {count}: step {step} is not one of them")]
    NoSuchStep {
        scenario: String,
        count: usize,
        step: usize,
    },
    /// A step (number from 1) replayed without traffic (`up`, `replay`).
    #[error("step {number} ({summary}): {source}")]
    Step {
        number: usize,
        summary: String,
        source: Box<RunnerError>,
    },
    #[error("lab `{lab}` does not match steps 1 to {boundary} of {scenario}: {source}")]
    LabDiffers {
        lab: String,
        boundary: usize,
        scenario: String,
        source: Box<RunnerError>,
    },
    #[error("starting stream {name} (step {number}): {source}")]
    StreamAcross {
        name: String,
        number: usize,
        source: Box<RunnerError>,
    },
    /// One error reported by several steps (pods wired together).
    #[error(transparent)]
    Shared(Arc<RunnerError>),
}

impl RunnerError {
    /// Whether a dataplane driver failed (crashed, hung, answered garbage,
    /// refused): the case ends as an error of the dataplane, not a failed
    /// expectation (`conform` counts it as a driver error).
    pub fn is_driver_fault(&self) -> bool {
        match self {
            RunnerError::Dataplane(error) => matches!(error, DataplaneError::Driver(_)),
            RunnerError::Control(error) => control_driver_fault(error),
            RunnerError::Shared(error) => error.is_driver_fault(),
            _ => false,
        }
    }
}

fn control_driver_fault(error: &ControlError) -> bool {
    match error {
        ControlError::Dataplane(DataplaneError::Driver(_)) => true,
        ControlError::Several(errors) => errors.iter().any(control_driver_fault),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> DataplaneError {
        DataplaneError::Driver("the driver closed its stdout".into())
    }

    #[test]
    fn a_drivers_fault_is_told_apart_by_its_type() {
        assert!(RunnerError::Dataplane(driver()).is_driver_fault());
        let several = ControlError::Several(vec![
            ControlError::UnknownMember("node-z".into()),
            ControlError::Dataplane(driver()),
        ]);
        let control = RunnerError::Control(several);
        assert!(control.is_driver_fault());
        assert!(RunnerError::Shared(Arc::new(control)).is_driver_fault());
        assert!(!RunnerError::StreamNotRunning("s".into()).is_driver_fault());
        assert!(!RunnerError::Control(ControlError::UnknownMember("x".into())).is_driver_fault());
    }

    #[test]
    fn the_texts_are_the_ones_people_read() {
        let shown = RunnerError::Control(ControlError::UnknownMember("node-z".into()));
        assert_eq!(
            shown.to_string(),
            "control plane: lab has no member 'node-z'"
        );
        let unsupported = RunnerError::Unsupported(vec!["IPv6".into(), "sctp".into()]);
        assert_eq!(
            unsupported.to_string(),
            "the dataplane cannot run this scenario: IPv6; sctp"
        );
        let step = RunnerError::Step {
            number: 2,
            summary: "delete pod web".into(),
            source: Box::new(RunnerError::StreamNotRunning("s".into())),
        };
        assert_eq!(
            step.to_string(),
            "step 2 (delete pod web): stream `s` is not running"
        );
        let late = RunnerError::PacketWaitTimedOut {
            stream: "s1".into(),
            packets: 25,
            reached: 3,
            within: Duration::from_secs(10),
        };
        assert_eq!(
            late.to_string(),
            "waiting for 25 packets of stream `s1`: it sent 3 within 10s"
        );
    }
}
