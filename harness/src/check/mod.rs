//! Judgements: what a step expects, what the traffic engine observed, and the
//! verdict. The expectation types live here (the scenario loader produces
//! them); so do the reduction of what a sender and the captures recorded to
//! the facts judged, when a failing send is tried again, the verdict of one
//! (source, destination, protocol) check, the verdict on a stopped stream
//! including the `afterMoveAt` check, the figures of a floating-IP move, and
//! the expected-against-actual table a person reads when a step fails.
//! Nothing here knows how a scenario is written.

mod delivery;
mod expectation;
mod migration;
mod observe;
mod retry;
mod stream;
mod table;

pub use delivery::{mismatches, AddressBook, DeliveryObserved, Mismatch, PodsHad};
pub use expectation::{Delivery, Loss, SeenAddress, StreamExpectation, TrafficExpectation};
pub use migration::{MigrationFigures, Move, OwnerChange, StreamPacket};
pub use observe::{delivery_observed, stream_packets, Answer, Arrival, Recording};
pub use retry::{NextTry, RetryPolicy};
pub use stream::stream_mismatches;
pub use table::{render_table, CheckLine};
