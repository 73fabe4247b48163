//! The record of a run: one typed outcome per probe, in the order run.
//! Probes only add to it; the printer turns it into text or JSON.

use serde::Serialize;

/// The verdict of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub(super) enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// One probe's outcome: what was sent, what the contract expects, what
/// came back (or, for a SKIP, why it did not run).
#[derive(Debug, Serialize)]
pub(super) struct Probe {
    pub(super) status: Verdict,
    pub(super) probe: &'static str,
    pub(super) expected: String,
    /// What came back; for a SKIP, the reason.
    pub(super) got: String,
}

/// How many probes ended in each verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) pass: usize,
    pub(super) fail: usize,
    pub(super) skip: usize,
}

/// Who hears of the run as it goes (the text printer shows each line as
/// its probe ends; the JSON printer waits for the end).
pub(super) trait Progress {
    /// The service answered the first request: the probes begin.
    fn reached(&self, keys: Option<&super::keys::ServiceKeys>);
    /// One probe ended.
    fn recorded(&self, probe: &Probe);
}

/// Every probe's outcome, in the order run.
#[derive(Debug, Default)]
pub(super) struct Record {
    probes: Vec<Probe>,
}

impl Record {
    pub(super) fn push(&mut self, probe: Probe) {
        self.probes.push(probe);
    }

    pub(super) fn probes(&self) -> &[Probe] {
        &self.probes
    }

    pub(super) fn tally(&self) -> Tally {
        let count = |v| self.probes.iter().filter(|p| p.status == v).count();
        Tally {
            pass: count(Verdict::Pass),
            fail: count(Verdict::Fail),
            skip: count(Verdict::Skip),
        }
    }
}
