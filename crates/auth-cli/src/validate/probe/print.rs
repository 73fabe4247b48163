//! The printer: the record of a run as text (a line per probe as it ends,
//! a header and a summary) or as one JSON report at the end.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::super::{IO_TIMEOUT, LoadedEnv};
use super::keys::ServiceKeys;
use super::record::{Probe, Progress, Record, Verdict};

/// The probe names' column.
const NAME_WIDTH: usize = 46;

/// Prints a run for a person (`json` false) or a program.
pub(super) struct Printer<'a> {
    json: bool,
    base: &'a str,
    env: Option<&'a LoadedEnv>,
}

#[derive(Serialize)]
struct ProbeReport<'a> {
    url: &'a str,
    env_file: Option<&'a Path>,
    probes: &'a [Probe],
    pass: usize,
    fail: usize,
    skip: usize,
}

impl<'a> Printer<'a> {
    pub(super) fn new(json: bool, base: &'a str, env: Option<&'a LoadedEnv>) -> Self {
        Self { json, base, env }
    }

    /// The end of the run: the JSON report, or the text summary line.
    pub(super) fn finish(&self, record: &Record) -> Result<()> {
        let tally = record.tally();
        if self.json {
            let report = ProbeReport {
                url: self.base,
                env_file: self.env.map(|e| e.path.as_path()),
                probes: record.probes(),
                pass: tally.pass,
                fail: tally.fail,
                skip: tally.skip,
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "\n{} probes: {} PASS, {} FAIL, {} SKIP",
                record.probes().len(),
                tally.pass,
                tally.fail,
                tally.skip
            );
        }
        Ok(())
    }
}

impl Progress for Printer<'_> {
    fn reached(&self, keys: Option<&ServiceKeys>) {
        if !self.json {
            print!("{}", header(self.base, self.env, keys));
        }
    }

    fn recorded(&self, probe: &Probe) {
        if !self.json {
            println!("{}", line(probe));
        }
    }
}

/// What is probed, how, and with which key.
fn header(base: &str, env: Option<&LoadedEnv>, keys: Option<&ServiceKeys>) -> String {
    let mut out = format!(
        "Probing {base} against the HTTP contract (each request times out after {} s; no retries).\n",
        IO_TIMEOUT.as_secs()
    );
    match (env, keys) {
        (Some(env), Some(keys)) => out.push_str(&format!(
            "Keys from {}: {}.\n\n",
            env.path.display(),
            describe_keys(keys)
        )),
        _ => out.push_str(
            "No env file: the probes that need the service's key are skipped (pass --env-file).\n\n",
        ),
    }
    out
}

/// The service's keys as known, never their values.
fn describe_keys(keys: &ServiceKeys) -> String {
    match (&keys.algorithm, &keys.encoding, &keys.problem) {
        (Some(alg), Some(_), _) => {
            format!("{alg:?}, the service's signing key is known (never shown)")
        }
        (_, _, Some(problem)) => format!("no usable signing key ({problem})"),
        _ => "no usable signing key".to_owned(),
    }
}

/// One probe's line.
fn line(probe: &Probe) -> String {
    match probe.status {
        Verdict::Skip => format!("SKIP  {:<NAME_WIDTH$}  skipped: {}", probe.probe, probe.got),
        verdict => format!(
            "{}  {:<NAME_WIDTH$}  expected {}; got {}",
            label(verdict),
            probe.probe,
            probe.expected,
            probe.got
        ),
    }
}

fn label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Skip => "SKIP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let probe = |status, got: &str| Probe {
            status,
            probe: "GET /",
            expected: "200".to_owned(),
            got: got.to_owned(),
        };
        let pad = " ".repeat(NAME_WIDTH - 5);
        assert_eq!(
            line(&probe(Verdict::Pass, "200")),
            format!("PASS  GET /{pad}  expected 200; got 200")
        );
        assert_eq!(
            line(&probe(Verdict::Fail, "404")),
            format!("FAIL  GET /{pad}  expected 200; got 404")
        );
        assert_eq!(
            line(&probe(Verdict::Skip, "no login")),
            format!("SKIP  GET /{pad}  skipped: no login")
        );
    }

    #[test]
    fn headers() {
        assert_eq!(
            header("http://127.0.0.1:1", None, None),
            "Probing http://127.0.0.1:1 against the HTTP contract (each request times out after 5 s; no retries).\nNo env file: the probes that need the service's key are skipped (pass --env-file).\n\n"
        );
    }
}
