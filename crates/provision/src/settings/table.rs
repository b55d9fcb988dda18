//! The settings' documentation, read from their one definition (`super::vars`): the README's
//! options table and `--help`'s text on the environment.

use super::vars::{definition, variable};
use super::{OTHER_VARIABLES, Settings};

/// One row of the settings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDoc {
    /// The variable.
    pub name: &'static str,
    /// Accepted values.
    pub values: String,
    /// What applies when it is unset.
    pub default: String,
    /// What it does.
    pub meaning: String,
}

impl Settings {
    /// The table of variables, for the README and `--help`, in the definition's order.
    pub fn describe() -> Vec<SettingDoc> {
        definition()
            .get_arguments()
            .filter_map(|arg| {
                let name = variable(arg)?;
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                let (meaning, default) = match arg.get_default_values() {
                    // No clap default: the help's closing `[default: …]`, if any, says what
                    // applies (see `super::vars`).
                    [] => match help
                        .strip_suffix(']')
                        .and_then(|h| h.rsplit_once(" [default: "))
                    {
                        Some((meaning, default)) => (meaning.to_string(), default.to_string()),
                        None => (help, "unset".to_string()),
                    },
                    defaults => (
                        help,
                        join(defaults.iter().map(|d| d.to_string_lossy()), ", "),
                    ),
                };
                let possible = arg.get_possible_values();
                let values = if possible.is_empty() {
                    join(arg.get_value_names().unwrap_or_default().iter(), " ")
                } else {
                    join(
                        possible
                            .iter()
                            .filter(|v| !v.is_hide_set())
                            .map(|v| v.get_name()),
                        " | ",
                    )
                };
                Some(SettingDoc {
                    name,
                    values,
                    default,
                    meaning,
                })
            })
            .collect()
    }

    /// `describe()` as a Markdown table.
    pub fn markdown_table() -> String {
        let mut out =
            String::from("| variable | values | default | meaning |\n|---|---|---|---|\n");
        // Cell text is escaped: `|` would split a cell and `<…>` would vanish as HTML.
        let cell = |text: &str| {
            text.replace('|', "\\|")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        for doc in Self::describe() {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                doc.name,
                cell(&doc.values),
                cell(&doc.default),
                cell(&doc.meaning)
            ));
        }
        out
    }

    /// `--help`'s text on the environment: every variable of the settings and timeout tables.
    pub fn help_text() -> String {
        let mut out = String::from("Environment variables (an empty value counts as unset):\n");
        for doc in Self::describe() {
            out.push_str(&format!(
                "  {}={}  (default: {})\n      {}\n",
                doc.name, doc.values, doc.default, doc.meaning
            ));
        }
        for (name, meaning) in OTHER_VARIABLES {
            out.push_str(&format!("  {name}\n      {meaning}\n"));
        }
        out.push_str(
            "\nTimeouts (a duration such as 90s, 2m, 500ms, 1h or a number of seconds):\n",
        );
        for doc in crate::timeouts::Timeouts::describe() {
            out.push_str(&format!(
                "  {}  (default: {})\n      {}\n",
                doc.env_var, doc.default, doc.bounds
            ));
        }
        out
    }
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>, separator: &str) -> String {
    items
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}
