//! resolv.conf as glibc reads it, and the order in which glibc's `res_search` tries names.
//!
//! A pod's `/etc/resolv.conf` (written by the kubelet) usually reads
//! `search <ns>.svc.cluster.local svc.cluster.local cluster.local`, a `nameserver` (the cluster
//! DNS Service) and `options ndots:5`. With ndots 5 a short name such as `postgres` is tried with
//! every search suffix *before* it is tried as it is, which is why `postgres` from namespace
//! `elsa` answers as `postgres.elsa.svc.cluster.local`, and why a name in another namespace needs
//! `svc.ns` or the FQDN.
//!
//! Parsing follows glibc's `res_init` (resolv/res_init.c):
//! - `#` and `;` at the start of a line make it a comment;
//! - `nameserver ADDR`: up to 3 (`MAXNS`) are kept, later ones ignored; an unparsable address is
//!   skipped. Extension: `ADDR:PORT` / `[V6]:PORT` set a port other than 53 (glibc would skip such
//!   a line; the tests and the simulated kubelet use it to reach an in-process server);
//! - `search` and `domain` replace each other: the last of the two wins (`domain X` means a search
//!   list of just `X`);
//! - `options` lines accumulate; `ndots:N` is capped at 15, `timeout:N` at 30, `attempts:N` at 5;
//!   unknown options are ignored;
//! - no `nameserver` line means the local resolver (127.0.0.1:53), as in glibc. When neither
//!   `search` nor `domain` is given glibc uses the domain of the host name; this module leaves the
//!   search list empty then (a pod's resolv.conf always has one).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// glibc's `MAXNS`: nameservers after the third are ignored.
pub const MAX_NAMESERVERS: usize = 3;
/// glibc caps `ndots` at 15 (`RES_MAXNDOTS`).
pub const MAX_NDOTS: u8 = 15;
/// glibc caps `timeout` at 30 s (`RES_MAXRETRANS`).
pub const MAX_TIMEOUT_SECS: u64 = 30;
/// glibc caps `attempts` at 5 (`RES_MAXRETRY`).
pub const MAX_ATTEMPTS: u8 = 5;

/// The parts of a resolv.conf that decide which names are queried, where, and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// In file order, at most [`MAX_NAMESERVERS`].
    pub nameservers: Vec<SocketAddr>,
    /// The search list (from the last `search` or `domain` line), trailing dots removed.
    pub search: Vec<String>,
    /// `options ndots:N` (default 1).
    pub ndots: u8,
    /// `options timeout:N`: per query and nameserver (default 5 s).
    pub timeout: Duration,
    /// `options attempts:N`: rounds over the nameservers (default 2).
    pub attempts: u8,
}

impl Default for ResolvConf {
    /// glibc's defaults for an empty file: the local resolver, no search list, ndots 1,
    /// timeout 5 s, 2 attempts.
    fn default() -> Self {
        Self {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// Parses resolv.conf text. Never fails: like glibc, lines it does not understand are ignored.
    pub fn parse(text: &str) -> Self {
        let mut conf = Self {
            nameservers: Vec::new(),
            ..Self::default()
        };
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword {
                "nameserver" => {
                    if conf.nameservers.len() < MAX_NAMESERVERS
                        && let Some(addr) = words.next().and_then(parse_nameserver)
                    {
                        conf.nameservers.push(addr);
                    }
                }
                "domain" => {
                    if let Some(d) = words.next() {
                        conf.search = vec![normalize_domain(d)];
                    }
                }
                "search" => {
                    conf.search = words.map(normalize_domain).collect();
                }
                "options" => {
                    for option in words {
                        conf.apply_option(option);
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = Self::default().nameservers;
        }
        conf
    }

    fn apply_option(&mut self, option: &str) {
        let Some((name, value)) = option.split_once(':') else {
            return;
        };
        // glibc reads the number with atoi: leading digits, anything after them ignored.
        let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
        let Ok(n) = digits.parse::<u64>() else {
            return;
        };
        match name {
            "ndots" => self.ndots = n.min(u64::from(MAX_NDOTS)) as u8,
            "timeout" => self.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT_SECS)),
            "attempts" => self.attempts = n.clamp(1, u64::from(MAX_ATTEMPTS)) as u8,
            _ => {}
        }
    }
}

/// `10.96.0.10`, `fd00::a`, and (extension) `127.0.0.1:5353`, `[::1]:5353`.
fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    // glibc accepts a zone index on link-local IPv6 (`fe80::1%eth0`); the zone is dropped here.
    if let Some((ip, _zone)) = word.split_once('%')
        && let Ok(ip) = ip.parse::<IpAddr>()
    {
        return Some(SocketAddr::new(ip, 53));
    }
    word.parse::<SocketAddr>().ok()
}

fn normalize_domain(d: &str) -> String {
    if d == "." {
        ".".to_owned()
    } else {
        d.trim_end_matches('.').to_owned()
    }
}

/// The names glibc's `res_search` queries for `name`, in order, without trailing dots.
///
/// - a trailing dot: only that name;
/// - at least `ndots` dots: the name as it is first, then each search domain appended;
/// - fewer dots: each search domain appended first, then the name as it is.
///
/// A search entry of `.` (the root) stands for the name as it is, which is then not tried a
/// second time. Empty or whitespace-only input gives no candidates.
pub fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    let name = name.trim();
    if name.is_empty() || name == "." {
        return Vec::new();
    }
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_owned()];
    }
    let dots = name.matches('.').count();
    let as_is_first = dots >= usize::from(conf.ndots);
    let mut out = Vec::with_capacity(conf.search.len() + 1);
    if as_is_first {
        out.push(name.to_owned());
    }
    let mut root_on_list = false;
    for domain in &conf.search {
        if domain == "." || domain.is_empty() {
            root_on_list = true;
            if !as_is_first {
                out.push(name.to_owned());
            }
        } else {
            out.push(format!("{name}.{domain}"));
        }
    }
    if !as_is_first && !root_on_list {
        out.push(name.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POD: &str = "\
# written by the kubelet
search elsa.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
";

    #[test]
    fn a_pods_resolv_conf() {
        let c = ResolvConf::parse(POD);
        assert_eq!(c.nameservers, vec!["10.96.0.10:53".parse().expect("addr")]);
        assert_eq!(
            c.search,
            [
                "elsa.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(c.ndots, 5);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.attempts, 2);
    }

    #[test]
    fn short_name_tries_the_search_list_first() {
        let c = ResolvConf::parse(POD);
        assert_eq!(
            candidates("postgres", &c),
            [
                "postgres.elsa.svc.cluster.local",
                "postgres.svc.cluster.local",
                "postgres.cluster.local",
                "postgres",
            ]
        );
    }

    #[test]
    fn enough_dots_tries_the_name_first() {
        let c = ResolvConf::parse(POD);
        // 5 dots with ndots 5: as-is first.
        assert_eq!(
            candidates("a.b.c.d.e.f", &c)[0],
            "a.b.c.d.e.f",
            "dots >= ndots"
        );
        let mut c1 = c.clone();
        c1.ndots = 1;
        assert_eq!(
            candidates("postgres.db", &c1),
            [
                "postgres.db",
                "postgres.db.elsa.svc.cluster.local",
                "postgres.db.svc.cluster.local",
                "postgres.db.cluster.local",
            ]
        );
    }

    #[test]
    fn trailing_dot_is_only_itself() {
        let c = ResolvConf::parse(POD);
        assert_eq!(
            candidates("postgres.elsa.svc.cluster.local.", &c),
            ["postgres.elsa.svc.cluster.local"]
        );
        assert!(candidates("", &c).is_empty());
        assert!(candidates(".", &c).is_empty());
    }

    #[test]
    fn search_and_domain_last_wins() {
        let c = ResolvConf::parse("search a.example b.example\ndomain c.example\n");
        assert_eq!(c.search, ["c.example"]);
        let c = ResolvConf::parse("domain c.example\nsearch a.example. b.example\n");
        assert_eq!(c.search, ["a.example", "b.example"]);
    }

    #[test]
    fn options_accumulate_and_are_capped() {
        let c = ResolvConf::parse(
            "options ndots:99 rotate\noptions timeout:120 attempts:9\noptions edns0 bogus:x\n",
        );
        assert_eq!(c.ndots, MAX_NDOTS);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.attempts, 5);
        let c = ResolvConf::parse("options ndots:2 ndots:0\n");
        assert_eq!(c.ndots, 0, "the last ndots wins");
    }

    #[test]
    fn nameservers_max_three_ports_and_defaults() {
        let c = ResolvConf::parse(
            "nameserver 10.0.0.1\nnameserver bogus\nnameserver ::1\nnameserver 127.0.0.1:5353\n\
             nameserver 10.0.0.9\n; comment\n# nameserver 10.0.0.8\n",
        );
        assert_eq!(
            c.nameservers,
            vec![
                "10.0.0.1:53".parse().expect("addr"),
                "[::1]:53".parse().expect("addr"),
                "127.0.0.1:5353".parse().expect("addr"),
            ]
        );
        let c = ResolvConf::parse("search x\n");
        assert_eq!(c.nameservers, ResolvConf::default().nameservers);
        let c = ResolvConf::parse("nameserver [::1]:1053\nnameserver fe80::1%eth0\n");
        assert_eq!(c.nameservers[0], "[::1]:1053".parse().expect("addr"));
        assert_eq!(c.nameservers[1].port(), 53);
    }

    #[test]
    fn root_on_the_search_list_is_the_name_itself() {
        let c = ResolvConf::parse("search a.example .\noptions ndots:1\n");
        assert_eq!(candidates("db", &c), ["db.a.example", "db"]);
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let c = ResolvConf::parse(&text);
            prop_assert!(!c.nameservers.is_empty() && c.nameservers.len() <= MAX_NAMESERVERS);
            prop_assert!(c.ndots <= MAX_NDOTS);
        }

        #[test]
        fn candidates_hold_glibcs_order(
            labels in proptest::collection::vec("[a-z][a-z0-9-]{0,8}", 1..5),
            search in proptest::collection::vec("[a-z]{1,6}(\\.[a-z]{1,6}){0,2}", 0..5),
            ndots in 0u8..7,
        ) {
            let name = labels.join(".");
            let conf = ResolvConf { search: search.clone(), ndots, ..ResolvConf::default() };
            let got = candidates(&name, &conf);
            // Every search domain once, plus the name itself once.
            prop_assert_eq!(got.len(), search.len() + 1);
            prop_assert_eq!(got.iter().filter(|c| **c == name).count(), 1);
            let dots = name.matches('.').count();
            if dots >= usize::from(ndots) {
                prop_assert_eq!(&got[0], &name);
            } else {
                prop_assert_eq!(got.last(), Some(&name));
            }
            let expanded: Vec<String> =
                got.iter().filter(|c| **c != name).cloned().collect();
            let want: Vec<String> = search.iter().map(|d| format!("{name}.{d}")).collect();
            prop_assert_eq!(expanded, want);
            // An absolute name is only itself.
            prop_assert_eq!(candidates(&format!("{name}."), &conf), vec![name.clone()]);
        }
    }
}
