//! `conform`: a dataplane judged against Calico's. Every catalogue case runs
//! on the vendor's dataplane and on the reference backend in the same run;
//! each case is then a match, a difference (the two observation records side
//! by side), a driver error, or not judged (the reference failed it). The
//! report also says which conntrack profile the dataplane behaves like.
//!
//! Observations, not verdicts, are compared: two runs that both pass may
//! still see different reply sources or land on different pods, and a
//! dataplane that does what Calico does must see what Calico's sees.

mod difference;
mod explore;
mod files;
mod judge;
mod junit;
mod kept;
mod protocol;
mod report;
mod run;

pub use difference::side_by_side;
pub use explore::ConformJudge;
pub use files::{
    render_conform_html, write_conform_reports, ConformCaseEntry, ConformFileError, ConformSummary,
};
pub use junit::render_conform_junit;
pub use kept::{kept_case, KEPT_SCENARIO};
pub use protocol::{holes as protocol_holes, protocol_items, protocol_line, ProtocolItem};
pub use report::ConformReport;
pub use run::{plan_pairs, release_line, run_conformance, CasePair};
// The judgement is the judge's (`check`): named here as well.
pub use crate::check::{
    case_name, CaseId, CaseObservation, CaseVerdict, Compared, ConformCase, Difference,
    LineObservation, MoveObservation, ProfileResult, StepObservation, VerdictCounts, PROFILE_TAG,
};

use crate::dataplane::BackendKind;

/// The backend whose observations count as Calico's: Felix's nftables mode,
/// rendered rule for rule as Felix programs it (felix/nftables/table.go
/// `NewTable` and renderer.go `renderRule`, from the nat rules of
/// felix/rules/nat.go; see `dataplane::nftables`). It is what a Calico node
/// running Felix's current dataplane mode holds. The iptables backend is
/// Felix's older mode; nft-maps is the harness's own design, not Felix's.
pub const REFERENCE: BackendKind = BackendKind::Nftables;
