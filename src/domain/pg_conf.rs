//! PostgreSQL server settings as a manifest states them: the server's command line
//! (`-c name=value`, `--name=value`, `-N n` for `max_connections`) and a `postgresql.conf` file.
//!
//! Pure parsing. PostgreSQL reads the configuration file first and the command line after it,
//! so a setting on the command line wins; within either, the last occurrence wins. Option
//! names are case-insensitive and, on the command line, `-` in a name means `_`
//! (PostgreSQL documentation, "Setting Parameters" and `postgres` reference page).

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The container's `command`/`args`; the text is the option as written.
    CommandLine(String),
    /// A configuration file; the line number (1-based) of the setting.
    File { line: usize },
}

/// One setting found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub origin: Origin,
}

impl Found {
    /// The value as a non-negative integer, when it is one.
    pub fn as_u32(&self) -> Option<u32> {
        self.value.trim().parse().ok()
    }
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
}

/// A setting from a server command line: every element of `command` then `args`. An element
/// that holds spaces (a `sh -c "postgres -c max_connections=200"` script) is split into words.
/// `-N n` / `-Nn` is `max_connections`. The last occurrence wins.
pub fn from_command_line<'a>(
    words: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<Found> {
    let want = normalize(name);
    let words: Vec<&str> = words
        .into_iter()
        .flat_map(|w| w.split_whitespace())
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .collect();
    let mut found = None;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        // `-c name=value`, `-cname=value`, `--name=value`
        let (assignment, used) = if w == "-c" {
            (words.get(i + 1).copied(), 2)
        } else if let Some(rest) = w.strip_prefix("--") {
            (Some(rest), 1)
        } else if let Some(rest) = w.strip_prefix("-c") {
            (Some(rest), 1)
        } else if want == "max_connections" && w == "-N" {
            if let Some(n) = words.get(i + 1) {
                found = Some(Found {
                    value: (*n).to_owned(),
                    origin: Origin::CommandLine(format!("-N {n}")),
                });
            }
            i += 2;
            continue;
        } else if want == "max_connections"
            && let Some(n) = w.strip_prefix("-N")
        {
            found = Some(Found {
                value: n.to_owned(),
                origin: Origin::CommandLine(w.to_owned()),
            });
            i += 1;
            continue;
        } else {
            (None, 1)
        };
        if let Some(a) = assignment
            && let Some((k, v)) = a.split_once('=')
            && normalize(k) == want
        {
            let written = if used == 2 {
                format!("-c {a}")
            } else {
                w.to_owned()
            };
            found = Some(Found {
                value: v.trim().to_owned(),
                origin: Origin::CommandLine(written),
            });
        }
        i += used;
    }
    found
}

/// A setting from the text of a `postgresql.conf`: `name = value` or `name value`, the value
/// optionally in single quotes, `#` starting a comment (outside quotes). The last occurrence
/// wins. `include` directives are not followed.
pub fn from_conf(text: &str, name: &str) -> Option<Found> {
    let want = normalize(name);
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        let split = line
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(line.len());
        let (key, rest) = line.split_at(split);
        if key.trim().to_ascii_lowercase() != want {
            continue;
        }
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
        let value = rest
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .unwrap_or(rest);
        if value.is_empty() {
            continue;
        }
        found = Some(Found {
            value: value.to_owned(),
            origin: Origin::File { line: n + 1 },
        });
    }
    found
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// PostgreSQL's default `superuser_reserved_connections`.
pub const DEFAULT_SUPERUSER_RESERVED: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn cl(words: &[&str]) -> Option<u32> {
        from_command_line(words.iter().copied(), "max_connections").and_then(|f| f.as_u32())
    }

    #[test]
    fn every_command_line_spelling_is_read() {
        assert_eq!(cl(&["postgres", "-c", "max_connections=200"]), Some(200));
        assert_eq!(cl(&["-c", "max_connections=50"]), Some(50));
        assert_eq!(cl(&["-cmax_connections=60"]), Some(60));
        assert_eq!(cl(&["--max_connections=70"]), Some(70));
        assert_eq!(cl(&["--max-connections=80"]), Some(80));
        assert_eq!(cl(&["-c", "MAX_CONNECTIONS=90"]), Some(90));
        assert_eq!(cl(&["postgres", "-N", "40"]), Some(40));
        assert_eq!(cl(&["-N30"]), Some(30));
        // One shell script element.
        assert_eq!(
            cl(&[
                "sh",
                "-c",
                "exec postgres -c max_connections=150 -c shared_buffers=256MB"
            ]),
            Some(150)
        );
    }

    #[test]
    fn the_last_occurrence_wins_and_others_are_ignored() {
        assert_eq!(
            cl(&[
                "-c",
                "max_connections=10",
                "-c",
                "shared_buffers=1GB",
                "-c",
                "max_connections=20"
            ]),
            Some(20)
        );
        assert_eq!(cl(&["-c", "shared_buffers=1GB"]), None);
        assert_eq!(cl(&["postgres"]), None);
        let f =
            from_command_line(["-c", "max_connections=20"], "max_connections").expect("test value");
        assert_eq!(
            f.origin,
            Origin::CommandLine("-c max_connections=20".into())
        );
    }

    #[test]
    fn a_conf_file_is_read_without_its_comments() {
        let conf = "\
# max_connections = 500
listen_addresses = '*'
max_connections = 100            # (change requires restart)
#max_connections = 10
shared_buffers = 128MB
superuser_reserved_connections 5
";
        let f = from_conf(conf, "max_connections").expect("test value");
        assert_eq!(f.as_u32(), Some(100));
        assert_eq!(f.origin, Origin::File { line: 3 });
        assert_eq!(
            from_conf(conf, "superuser_reserved_connections").and_then(|f| f.as_u32()),
            Some(5)
        );
        assert_eq!(
            from_conf("max_connections='42'", "max_connections").and_then(|f| f.as_u32()),
            Some(42)
        );
        assert_eq!(
            from_conf(
                "max_connections = 1\nmax_connections = 2\n",
                "max_connections"
            )
            .and_then(|f| f.as_u32()),
            Some(2)
        );
        assert_eq!(from_conf("# nothing\n", "max_connections"), None);
        assert_eq!(from_conf("max_connections_x = 3", "max_connections"), None);
    }
}
