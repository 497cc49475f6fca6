//! The real binary's TUI in a real terminal: `elsadoctor demo` inside tmux (a private server
//! socket, 120×40). Waits for the run to finish, moves to a failing check, sees its fix, re-runs,
//! quits with Ctrl-C, and checks that the shell prompt is back and the terminal left raw mode. Every wait
//! polls the pane against a deadline; nothing sleeps to synchronise. tmux must be installed
//! (CI installs it): without it the test fails and says so.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PROMPT: &str = "tui-e2e$ ";

/// A tmux server of our own, killed on drop (also when an assertion fails).
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(home: &Path) -> Self {
        match Command::new("tmux").arg("-V").output() {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "tmux is required for this test (the end-to-end TUI test drives the binary in \
                 tmux); install it, e.g. `apt-get install tmux`"
            ),
        }
        let tmux = Self {
            socket: format!("elsadoctor-e2e-{}", std::process::id()),
        };
        // A plain POSIX shell with a known prompt and a scrubbed environment.
        let shell = format!(
            "env -i HOME={home} PATH=/usr/bin:/bin TERM=xterm-256color LANG=C.UTF-8 \
             PS1='{PROMPT}' XDG_STATE_HOME={home}/state sh",
            home = home.display()
        );
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "e2e",
            &shell,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {out:?}");
    }

    fn literal(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", "e2e", "-l", text]);
        assert!(out.status.success(), "send-keys -l: {out:?}");
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "e2e"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the pane until `pred` holds; fails with the last screen after `within`.
    fn wait_for(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + within;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}; the pane shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn demo_tui_runs_shows_a_fix_reruns_and_restores_the_terminal() {
    let home = tempfile::tempdir().expect("tmp");
    let tmux = Tmux::start(home.path());
    let long = Duration::from_secs(30);
    tmux.wait_for("the shell prompt", long, |s| s.contains(PROMPT.trim_end()));

    let bin = env!("CARGO_BIN_EXE_elsadoctor");
    tmux.literal(&format!("'{bin}' demo -v"));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the first run to finish", long, |s| s.contains("done in"));
    assert!(screen.contains("SIMULATED"), "{screen}");
    // -v logs go to the state directory's file, never to the screen.
    let log = std::fs::read_to_string(home.path().join("state/elsadoctor/elsadoctor.log"))
        .expect("the TUI's log file");
    assert!(log.contains("starting run"), "{log}");
    assert!(!screen.contains("starting run"), "{screen}");
    assert!(screen.contains("✖"), "the demo has failures:\n{screen}");

    // Failures only; the second one is the crash-looping pod. Its fix names the real pod.
    tmux.keys(&["f", "j"]);
    let screen = tmux.wait_for("the pods check's fix", long, |s| {
        s.contains("┌ workload.pods ─") && s.contains("Fix:")
    });
    assert!(screen.contains("OOMKilled"), "{screen}");
    assert!(
        screen.contains("$ kubectl --context sim -n elsa describe pod")
            && screen.contains("set resources deployment/elsa-server"),
        "the command with the real names:\n{screen}"
    );

    // Re-run everything: the header says running, then done again, the selection stays.
    tmux.keys(&["r"]);
    let screen = tmux.wait_for("the re-run to finish", long, |s| {
        s.contains("run 2 done in") && s.contains("┌ workload.pods ─") && s.contains("Fix:")
    });
    assert!(screen.contains("Checks: failures only"), "{screen}");

    // Ctrl-C (a key in raw mode) quits like q and restores the terminal.
    tmux.keys(&["C-c"]);
    tmux.wait_for("the prompt after quitting", long, |s| {
        s.lines()
            .last_non_empty()
            .is_some_and(|l| l == PROMPT.trim_end())
    });
    tmux.literal("stty -a");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("stty's answer", long, |s| s.contains("icanon"));
    let words: Vec<&str> = screen.split_whitespace().collect();
    assert!(words.contains(&"icanon"), "canonical mode back:\n{screen}");
    assert!(words.contains(&"echo"), "echo back:\n{screen}");
    assert!(
        !words.contains(&"-icanon") && !words.contains(&"-echo"),
        "{screen}"
    );
}

trait LastNonEmpty<'a> {
    fn last_non_empty(self) -> Option<&'a str>;
}

impl<'a, I: DoubleEndedIterator<Item = &'a str>> LastNonEmpty<'a> for I {
    fn last_non_empty(mut self) -> Option<&'a str> {
        self.rfind(|l| !l.trim().is_empty()).map(str::trim_end)
    }
}
