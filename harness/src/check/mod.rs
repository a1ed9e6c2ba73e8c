//! Judgements: what a step expects, what the traffic engine observed, and the
//! verdict. The expectation types live here (the scenario loader produces
//! them); so do the reduction of what a sender and the captures recorded to
//! the facts judged, when a failing send is tried again, the verdict of one
//! (source, destination, protocol) check, the verdict on a stopped stream
//! including the `afterMoveAt` check, the figures of a floating-IP move, and
//! the expected-against-actual table a person reads when a step fails; what
//! one case's run came to ([`ScenarioResult`]), the record two runs are
//! compared by ([`CaseObservation`]) and the verdict of a case run on a
//! dataplane against the same case on the reference ([`ConformCase`]: `conform`
//! and its explorer judge with it). Nothing here knows how a scenario is
//! written: `conform` says what a scenario asks to compare ([`Compared`]).

mod compare;
mod delivery;
mod expectation;
mod migration;
mod observe;
mod picture;
mod result;
mod retry;
mod stream;
mod table;
mod timing;
mod verdict;

pub use compare::{
    CaseObservation, Compared, Difference, LineObservation, MoveObservation, StepObservation,
};
pub use delivery::{mismatches, AddressBook, DeliveryObserved, Mismatch, PodsHad};
pub use expectation::{Delivery, Loss, SeenAddress, StreamExpectation, TrafficExpectation};
pub use migration::{MigrationFigures, Move, OwnerChange, StreamPacket};
pub use observe::{delivery_observed, stream_packets, Answer, Arrival, Recording};
pub use picture::{FloatingIpRoute, LabPicture, MemberPicture, NodePicture, PodPicture, RouteHop};
pub use result::{CaseHead, MigrationReport, Outcome, ScenarioResult, StepResult};
pub use retry::{NextTry, RetryPolicy};
pub use stream::stream_mismatches;
pub use table::{render_table, CheckLine};
pub use timing::{awaits_late_leaks, judge_late_leaks, late_leaks, Timing};
#[cfg(test)]
pub(crate) use verdict::tests as verdict_tests;
pub use verdict::{
    case_name, CaseId, CaseVerdict, ConformCase, ProfileResult, VerdictCounts, PROFILE_TAG,
};
