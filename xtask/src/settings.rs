//! `cargo xtask settings [--check]`: writes the settings tables of
//! docs/contract.md (every setting) and docs/account-lifecycle.md (the
//! mail settings) from the settings catalogue, `auth_kit::config::catalog`,
//! and checks the templates' README tables against it.
//!
//! The READMEs keep their own wording (they explain more, for the
//! project's users), so they are checked, not written: every variable they
//! list must be one the catalogue has for their strategy, with the same
//! default, and every setting of the strategy must be listed. `--check`
//! (and this module's test, so `cargo xtask test` and CI) fails when a
//! table differs from what the catalogue says.

use std::fs;

use anyhow::{Context, Result, bail};
use auth_kit::config::catalog::{self, SERVICE_NAME, Setting};

use crate::new::Strategy;
use crate::repo;

/// Arguments of `cargo xtask settings`.
#[derive(clap::Args, Debug)]
pub struct SettingsArgs {
    /// Write nothing: list the docs whose tables differ from the
    /// catalogue, and fail when there is any.
    #[arg(long)]
    pub check: bool,
}

/// The header line every written table starts with.
const HEADER: &str = "| variable | default | rule |\n";

/// The settings docs/account-lifecycle.md lists, in its order.
pub const ACCOUNT_LIFECYCLE: &[Setting] = &[
    catalog::MAIL_URL,
    catalog::MAIL_FROM,
    catalog::PUBLIC_URL,
    catalog::RESET_TOKEN_EXPIRE_MINUTES,
    catalog::VERIFY_TOKEN_EXPIRE_HOURS,
    catalog::REQUIRE_VERIFIED_EMAIL,
    catalog::MAIL_MAX_PER_ADDRESS,
    catalog::MAIL_MAX_PER_IP,
];

/// A doc and the table written into it.
struct Doc {
    path: &'static str,
    table: fn() -> String,
}

const DOCS: [Doc; 2] = [
    Doc {
        path: "docs/contract.md",
        table: contract_table,
    },
    Doc {
        path: "docs/account-lifecycle.md",
        table: account_lifecycle_table,
    },
];

/// The templates whose READMEs list settings.
const READMES: [(Strategy, &str); 3] = [
    (Strategy::Jwt, "templates/jwt_auth/README.md.liquid"),
    (Strategy::Oauth2, "templates/oauth2_flow/README.md.liquid"),
    (
        Strategy::Supabase,
        "templates/supabase_auth/README.md.liquid",
    ),
];

/// `cargo xtask settings`: writes (or with `--check`, compares) the docs'
/// tables, and checks the READMEs' tables.
pub fn run(args: &SettingsArgs) -> Result<()> {
    let mut stale = Vec::new();
    for doc in DOCS {
        let path = repo::root().join(doc.path);
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let written = with_table(&text, &(doc.table)()).with_context(|| doc.path.to_owned())?;
        if written == text {
            continue;
        }
        if args.check {
            stale.push(doc.path);
        } else {
            fs::write(&path, written)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let problems = readme_problems()?;
    if !problems.is_empty() {
        bail!(
            "the README settings tables disagree with the settings catalogue (crates/auth-kit/src/config/catalog.rs):\n  {}",
            problems.join("\n  ")
        );
    }
    if !stale.is_empty() {
        bail!(
            "{} differ from the settings catalogue: run `cargo xtask settings`",
            stale.join(" and ")
        );
    }
    Ok(())
}

/// Every setting, one row each: those of the jwt and oauth2 services
/// first, then the supabase service's own.
fn contract_table() -> String {
    let rows = catalog::ALL.iter().chain(auth_kit_supabase::settings::ALL);
    table(rows, |s| s.name.to_owned())
}

/// The setting called `name`, shared or the Supabase service's own.
fn find(name: &str) -> Option<&'static Setting> {
    catalog::find(name).or_else(|| {
        auth_kit_supabase::settings::ALL
            .iter()
            .find(|s| s.name == name)
    })
}

fn account_lifecycle_table() -> String {
    table(ACCOUNT_LIFECYCLE.iter(), |s| format!("`{}`", s.name))
}

fn table<'a>(rows: impl Iterator<Item = &'a Setting>, name: impl Fn(&Setting) -> String) -> String {
    let mut table = format!("{HEADER}|---|---|---|\n");
    for s in rows {
        table.push_str(&format!("| {} | {} | {} |\n", name(s), s.default, s.rule));
    }
    table
}

/// `text` with the table that starts at [`HEADER`] (which must occur
/// once) replaced by `table`.
fn with_table(text: &str, table: &str) -> Result<String> {
    let mut starts = text.match_indices(HEADER).map(|(i, _)| i);
    let (Some(start), None) = (starts.next(), starts.next()) else {
        bail!("needs exactly one table headed {:?}", HEADER.trim_end());
    };
    let length: usize = text[start..]
        .split_inclusive('\n')
        .take_while(|line| line.starts_with('|'))
        .map(str::len)
        .sum();
    Ok(format!(
        "{}{table}{}",
        &text[..start],
        &text[start + length..]
    ))
}

/// What is wrong with the READMEs' settings tables, one line each.
fn readme_problems() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (strategy, path) in READMES {
        let text = fs::read_to_string(repo::root().join(path))
            .with_context(|| format!("cannot read {path}"))?;
        problems.extend(
            check_readme(strategy, &text)
                .into_iter()
                .map(|p| format!("{path}: {p}")),
        );
    }
    Ok(problems)
}

/// The problems of one README's table (the first whose header starts
/// with `| variable |`): rows may group variables (`A`, `B`) and their
/// defaults (`1`, `2`); a table of two columns shows no defaults.
fn check_readme(strategy: Strategy, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("| variable |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let mut listed = Vec::new();
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let names: Vec<&str> = cells[0].split(", ").map(|n| n.trim_matches('`')).collect();
        let defaults: Vec<&str> = match cells.get(1) {
            Some(d) if cells.len() == 3 => d.split(", ").collect(),
            _ => Vec::new(),
        };
        for (i, name) in names.iter().enumerate() {
            let Some(setting) = find(name).filter(|s| strategy.settings().contains(s)) else {
                problems.push(format!(
                    "{name} is not a setting of the {} service",
                    strategy.name()
                ));
                continue;
            };
            listed.push(setting.name);
            let shown = match defaults.len() {
                0 => continue,
                1 => defaults[0],
                _ => defaults.get(i).copied().unwrap_or_default(),
            };
            if readme_default(shown) != catalogue_default(setting) {
                problems.push(format!(
                    "{name}'s default is shown as {shown:?}, the catalogue says {:?}",
                    setting.default
                ));
            }
        }
    }
    for setting in strategy.settings() {
        if !listed.contains(&setting.name) {
            problems.push(format!("{} is not listed", setting.name));
        }
    }
    problems
}

/// A README's default, as the catalogue writes it.
fn readme_default(shown: &str) -> String {
    shown
        .replace('`', "")
        .replace("{{project-name}}", SERVICE_NAME)
}

/// A catalogue default, as a README writes it.
fn catalogue_default(setting: &Setting) -> String {
    if setting.default.starts_with("none: required") {
        return "(required)".to_owned();
    }
    setting
        .default
        .replace('`', "")
        .replace("the service name", SERVICE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/contract.md and docs/account-lifecycle.md show what the
    /// catalogue says, and the READMEs agree with it.
    #[test]
    fn the_settings_tables_are_what_the_catalogue_says() {
        run(&SettingsArgs { check: true }).unwrap();
    }

    #[test]
    fn a_readme_that_disagrees_is_named() {
        let readme = "| variable | default | |\n|---|---|---|\n| `HOST`, `PORT` | `127.0.0.1`, `8080` | |\n| `ITEMS` | 1 | |\n";
        let problems = check_readme(Strategy::Supabase, readme);
        assert!(problems[0].starts_with("PORT's default"), "{problems:?}");
        assert!(
            problems[1].starts_with("ITEMS is not a setting"),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p == "SUPABASE_URL is not listed"));
    }

    #[test]
    fn tables_are_replaced_whole() {
        let text = format!("intro\n\n{HEADER}|---|---|---|\n| A | 1 | x |\n\nafter\n");
        let written =
            with_table(&text, &format!("{HEADER}|---|---|---|\n| B | 2 | y |\n")).unwrap();
        assert_eq!(
            written,
            format!("intro\n\n{HEADER}|---|---|---|\n| B | 2 | y |\n\nafter\n")
        );
        assert!(with_table("no table", "").is_err());
    }
}
