//! What a simulated container runs on `pods/exec`: a tiny `sh -c` interpreter over the
//! container's [`Fs`], and the runtime's answer when the executable does not exist.
//!
//! The grammar is exactly: pipelines (`a | b`) separated by `;` (or newlines); words with
//! single and double quotes and backslash escapes; `$?` (the last stage's status); the
//! redirects `>/dev/null`, `1>/dev/null` and `2>/dev/null` (also with a space before the
//! target); unquoted `*` and `?` globbing in any path segment (an unmatched pattern stays
//! literal). Commands: `ls` (GNU: `-1 -d -a -l`, `--`), `echo` (`-n`), `true`, `false`,
//! `exit [N]`, and the GNU coreutils/grep subset the doctor's listing uses: `cat [FILE…]`,
//! `head [-c N | -n N] [FILE…]`, `sort [-u] [FILE…]` (byte order, the C locale of the images),
//! `grep [-a -o -H -h -E -F -i -v -c -q] PATTERN [FILE…]` (a file with a NUL byte is binary:
//! without `-a` only `grep: F: binary file matches` on stderr, as grep 3.8 does). Anything else
//! fails the way dash does: an unknown command is `sh: 1: X: not found` with status 127, an
//! unsupported construct a `Syntax error` with status 2.

use super::fs::{Fs, Node, normalise};

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The process exited with this status.
    Code(i32),
    /// The runtime could not start the executable (not in the image / no `$PATH` match).
    NotFound(String),
}

/// What an exec produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub exit: Exit,
}

/// The working directory of exec'd processes (the images' `WORKDIR` does not matter for the
/// absolute paths the doctor uses).
const CWD: &str = "/";

/// Commands a shell image provides.
const COMMANDS: &[&str] = &[
    "sh", "dash", "bash", "ls", "echo", "true", "false", "cat", "grep", "head", "sort",
];

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Whether `argv0` can be started in a container with (`shell`) or without a shell.
fn executable(argv0: &str, fs: &Fs, shell: bool) -> bool {
    if !shell {
        return false;
    }
    if argv0.contains('/') {
        return matches!(fs.lookup(argv0), Some(Node::File(_)))
            && COMMANDS.contains(&basename(argv0));
    }
    COMMANDS.contains(&argv0)
}

/// Run `argv` in a container with filesystem `fs`; `shell` says whether it has `sh` and the
/// core utilities at all.
pub fn exec(argv: &[String], fs: &Fs, shell: bool) -> Outcome {
    let Some(argv0) = argv.first() else {
        return Outcome {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit: Exit::NotFound(String::new()),
        };
    };
    if !executable(argv0, fs, shell) {
        return Outcome {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit: Exit::NotFound(argv0.clone()),
        };
    }
    let mut io = Io::default();
    let code = match basename(argv0) {
        "sh" | "dash" | "bash" => run_sh(&argv[1..], fs, &mut io),
        _ => {
            let args: Vec<String> = argv.to_vec();
            run_command(&args, fs, &mut io, 0, &[])
        }
    };
    Outcome {
        stdout: io.out,
        stderr: io.err,
        exit: Exit::Code(code),
    }
}

#[derive(Default)]
struct Io {
    out: Vec<u8>,
    err: Vec<u8>,
    drop_out: bool,
    drop_err: bool,
}

impl Io {
    fn out(&mut self, s: &str) {
        self.out_bytes(s.as_bytes());
    }
    fn out_bytes(&mut self, b: &[u8]) {
        if !self.drop_out {
            self.out.extend_from_slice(b);
        }
    }
    fn err(&mut self, s: &str) {
        if !self.drop_err {
            self.err.extend_from_slice(s.as_bytes());
        }
    }
}

fn run_sh(args: &[String], fs: &Fs, io: &mut Io) -> i32 {
    match args {
        [] => 0, // reads commands from stdin, which is empty
        [c, script, ..] if c == "-c" => run_script(script, fs, io),
        [c] if c == "-c" => {
            io.err("sh: 0: -c requires an argument\n");
            2
        }
        [opt, ..] if opt.starts_with('-') => {
            io.err(&format!("sh: 0: Illegal option {opt}\n"));
            2
        }
        [file, ..] => {
            io.err(&format!("sh: 0: cannot open {file}: No such file\n"));
            2
        }
    }
}

/// One character of a word and whether it was quoted (quoted glob characters are literal).
type Word = Vec<(char, bool)>;

#[derive(Default)]
struct Command {
    words: Vec<Word>,
    drop_out: bool,
    drop_err: bool,
    line: usize,
    /// Its stdout feeds the next command's stdin (`|`).
    piped: bool,
}

struct SyntaxError {
    line: usize,
    message: String,
}

fn unexpected(line: usize, tok: &str) -> SyntaxError {
    SyntaxError {
        line,
        message: format!("Syntax error: \"{tok}\" unexpected"),
    }
}

/// Where `$?` must be substituted: a marker char that cannot come from the input as a
/// separate unit (we keep it as a flagged element).
const STATUS_MARK: char = '\u{0}';

fn parse(script: &str) -> Result<Vec<Command>, SyntaxError> {
    let chars: Vec<char> = script.chars().collect();
    let mut cmds = Vec::new();
    let mut cur = Command {
        line: 1,
        ..Command::default()
    };
    let mut word: Word = Vec::new();
    let mut in_word = false;
    let mut line = 1usize;
    let mut pending_redirect: Option<u8> = None;
    let mut i = 0;

    // Finish the current word: a redirect target or an argument.
    fn finish(
        word: &mut Word,
        in_word: &mut bool,
        cur: &mut Command,
        pending: &mut Option<u8>,
        line: usize,
    ) -> Result<(), SyntaxError> {
        if !*in_word {
            return Ok(());
        }
        let w = std::mem::take(word);
        *in_word = false;
        if let Some(fd) = pending.take() {
            let target: String = w.iter().map(|(c, _)| *c).collect();
            if target != "/dev/null" {
                return Err(SyntaxError {
                    line,
                    message: format!(
                        "cannot create {target}: redirection to files is not simulated (only /dev/null)"
                    ),
                });
            }
            if fd == 1 {
                cur.drop_out = true;
            } else {
                cur.drop_err = true;
            }
        } else {
            cur.words.push(w);
        }
        Ok(())
    }

    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                finish(
                    &mut word,
                    &mut in_word,
                    &mut cur,
                    &mut pending_redirect,
                    line,
                )?;
                i += 1;
            }
            ';' | '\n' => {
                finish(
                    &mut word,
                    &mut in_word,
                    &mut cur,
                    &mut pending_redirect,
                    line,
                )?;
                if pending_redirect.is_some() {
                    return Err(unexpected(line, if c == ';' { ";" } else { "newline" }));
                }
                if cur.words.is_empty() {
                    if c == ';' {
                        let tok = if chars.get(i + 1) == Some(&';') {
                            ";;"
                        } else {
                            ";"
                        };
                        return Err(unexpected(line, tok));
                    }
                } else {
                    cmds.push(std::mem::take(&mut cur));
                }
                if c == '\n' {
                    line += 1;
                }
                cur.line = line;
                i += 1;
            }
            '\'' => {
                in_word = true;
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(SyntaxError {
                                line,
                                message: "Syntax error: Unterminated quoted string".into(),
                            });
                        }
                        Some('\'') => break,
                        Some(&ch) => {
                            word.push((ch, true));
                            j += 1;
                        }
                    }
                }
                i = j + 1;
            }
            '"' => {
                in_word = true;
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(SyntaxError {
                                line,
                                message: "Syntax error: Unterminated quoted string".into(),
                            });
                        }
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(j + 1), Some('$' | '`' | '"' | '\\')) => {
                            word.push((chars[j + 1], true));
                            j += 2;
                        }
                        Some('$') => {
                            j = dollar(&chars, j, &mut word, true, line)?;
                        }
                        Some('`') => return Err(unexpected(line, "`")),
                        Some(&ch) => {
                            word.push((ch, true));
                            j += 1;
                        }
                    }
                }
                i = j + 1;
            }
            '\\' => {
                in_word = true;
                match chars.get(i + 1) {
                    Some('\n') => line += 1,
                    Some(&ch) => word.push((ch, true)),
                    None => word.push(('\\', true)),
                }
                i += 2;
            }
            '$' => {
                in_word = true;
                i = dollar(&chars, i, &mut word, false, line)?;
            }
            '>' => {
                // `2>` / `1>` only when the digit alone started the word.
                let fd = match word.as_slice() {
                    [('2', false)] if in_word => 2,
                    [('1', false)] if in_word => 1,
                    _ => {
                        finish(
                            &mut word,
                            &mut in_word,
                            &mut cur,
                            &mut pending_redirect,
                            line,
                        )?;
                        1
                    }
                };
                word.clear();
                in_word = false;
                if pending_redirect.is_some() {
                    return Err(unexpected(line, ">"));
                }
                let mut j = i + 1;
                if matches!(chars.get(j), Some('>')) {
                    j += 1; // `>>` appends; /dev/null does not care
                }
                if matches!(chars.get(j), Some('&' | '|')) {
                    return Err(unexpected(line, &format!(">{}", chars[j])));
                }
                pending_redirect = Some(fd);
                i = j;
            }
            '|' if chars.get(i + 1) != Some(&'|') => {
                finish(
                    &mut word,
                    &mut in_word,
                    &mut cur,
                    &mut pending_redirect,
                    line,
                )?;
                if pending_redirect.is_some() || cur.words.is_empty() {
                    return Err(unexpected(line, "|"));
                }
                cur.piped = true;
                cmds.push(std::mem::take(&mut cur));
                cur.line = line;
                i += 1;
            }
            '|' | '&' | '<' | '(' | ')' | '`' => {
                let mut tok = c.to_string();
                if matches!(c, '|' | '&') && chars.get(i + 1) == Some(&c) {
                    tok.push(c);
                }
                return Err(unexpected(line, &tok));
            }
            _ => {
                in_word = true;
                word.push((c, false));
                i += 1;
            }
        }
    }
    finish(
        &mut word,
        &mut in_word,
        &mut cur,
        &mut pending_redirect,
        line,
    )?;
    if pending_redirect.is_some() {
        return Err(unexpected(line, "end of file"));
    }
    if !cur.words.is_empty() {
        cmds.push(cur);
    } else if cmds.last().is_some_and(|c| c.piped) {
        return Err(SyntaxError {
            line,
            message: "Syntax error: end of file unexpected".into(),
        });
    }
    Ok(cmds)
}

/// `$` at `chars[i]`: `$?` becomes the status marker, a lone `$` is literal, any other
/// expansion is not simulated.
fn dollar(
    chars: &[char],
    i: usize,
    word: &mut Word,
    quoted: bool,
    line: usize,
) -> Result<usize, SyntaxError> {
    match chars.get(i + 1) {
        Some('?') => {
            word.push((STATUS_MARK, true));
            Ok(i + 2)
        }
        Some(c)
            if c.is_ascii_alphanumeric()
                || matches!(c, '_' | '{' | '(' | '$' | '#' | '@' | '*' | '!' | '-') =>
        {
            Err(SyntaxError {
                line,
                message: format!(
                    "${c}...: expansion not supported by the simulated shell (only $?)"
                ),
            })
        }
        _ => {
            word.push(('$', quoted));
            Ok(i + 1)
        }
    }
}

fn run_script(script: &str, fs: &Fs, io: &mut Io) -> i32 {
    let cmds = match parse(script) {
        Ok(c) => c,
        Err(e) => {
            io.err(&format!("sh: {}: {}\n", e.line, e.message));
            return 2;
        }
    };
    let mut last = 0;
    let mut stdin: Vec<u8> = Vec::new();
    for cmd in cmds {
        let mut args = Vec::new();
        for w in &cmd.words {
            args.extend(expand(w, last, fs));
        }
        let in_pipeline = cmd.piped || !stdin.is_empty();
        if !in_pipeline && args.first().map(String::as_str) == Some("exit") {
            return match args.get(1) {
                None => last,
                Some(n) => match n.parse::<i64>() {
                    Ok(v) if v >= 0 => i32::try_from(v % 256).unwrap_or(0),
                    _ => {
                        io.err(&format!("sh: {}: exit: Illegal number: {n}\n", cmd.line));
                        2
                    }
                },
            };
        }
        // Each command writes to its own stdout; a piped one's becomes the next one's stdin.
        let mut stage = Io {
            drop_out: cmd.drop_out,
            drop_err: io.drop_err || cmd.drop_err,
            ..Io::default()
        };
        let input = std::mem::take(&mut stdin);
        last = run_command(&args, fs, &mut stage, cmd.line, &input);
        io.err.extend_from_slice(&stage.err);
        if cmd.piped {
            stdin = stage.out;
        } else {
            io.out_bytes(&stage.out);
        }
    }
    last
}

/// Expand a word: `$?`, then pathname expansion when an unquoted `*`/`?` is in it.
fn expand(word: &Word, last: i32, fs: &Fs) -> Vec<String> {
    let mut chars: Word = Vec::new();
    for &(c, q) in word {
        if c == STATUS_MARK {
            chars.extend(last.to_string().chars().map(|d| (d, true)));
        } else {
            chars.push((c, q));
        }
    }
    let literal: String = chars.iter().map(|(c, _)| *c).collect();
    if !chars.iter().any(|&(c, q)| !q && matches!(c, '*' | '?')) {
        return vec![literal];
    }
    let matches = glob(&chars, fs);
    if matches.is_empty() {
        vec![literal]
    } else {
        matches
    }
}

fn glob(pattern: &Word, fs: &Fs) -> Vec<String> {
    let absolute = pattern.first().is_some_and(|(c, _)| *c == '/');
    let segments: Vec<Word> = pattern
        .split(|(c, _)| *c == '/')
        .filter(|s| !s.is_empty())
        .map(<[(char, bool)]>::to_vec)
        .collect();
    // (display path, absolute path)
    let mut paths: Vec<(String, String)> = vec![(
        if absolute { "/".into() } else { String::new() },
        if absolute { "/".into() } else { CWD.into() },
    )];
    for seg in &segments {
        let has_glob = seg.iter().any(|&(c, q)| !q && matches!(c, '*' | '?'));
        let mut next = Vec::new();
        for (shown, abs) in &paths {
            let join = |name: &str| {
                let s = if shown.is_empty() || shown.ends_with('/') {
                    format!("{shown}{name}")
                } else {
                    format!("{shown}/{name}")
                };
                (s, normalise(&format!("{abs}/{name}")))
            };
            if has_glob {
                if fs.lookup(abs) != Some(Node::Dir) {
                    continue;
                }
                for name in fs.children(abs) {
                    let leading_dot_ok = seg.first().is_some_and(|(c, _)| *c == '.');
                    if name.starts_with('.') && !leading_dot_ok {
                        continue;
                    }
                    let name_chars: Vec<char> = name.chars().collect();
                    if matches_segment(seg, &name_chars) {
                        next.push(join(&name));
                    }
                }
            } else {
                let name: String = seg.iter().map(|(c, _)| *c).collect();
                let candidate = join(&name);
                if fs.lookup(&candidate.1).is_some() {
                    next.push(candidate);
                }
            }
        }
        paths = next;
    }
    let mut out: Vec<String> = paths.into_iter().map(|(s, _)| s).collect();
    out.sort();
    out
}

fn matches_segment(pat: &[(char, bool)], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((&('*', false), rest)) => (0..=name.len()).any(|k| matches_segment(rest, &name[k..])),
        Some((&('?', false), rest)) => !name.is_empty() && matches_segment(rest, &name[1..]),
        Some((&(c, _), rest)) => name.first() == Some(&c) && matches_segment(rest, &name[1..]),
    }
}

/// Run one command with `stdin`. `line` is the script line for `sh: N:` messages (0: not from
/// a script).
fn run_command(args: &[String], fs: &Fs, io: &mut Io, line: usize, stdin: &[u8]) -> i32 {
    let Some(cmd) = args.first() else {
        return 0;
    };
    match basename(cmd) {
        "true" => 0,
        "false" => 1,
        "echo" => {
            let (newline, rest) = match args.get(1).map(String::as_str) {
                Some("-n") => (false, &args[2..]),
                _ => (true, &args[1..]),
            };
            let mut s = rest.join(" ");
            if newline {
                s.push('\n');
            }
            io.out(&s);
            0
        }
        "ls" if !cmd.contains('/') || fs.lookup(cmd).is_some() => ls(&args[1..], fs, io),
        "cat" => cat(&args[1..], fs, io, stdin),
        "head" => head(&args[1..], fs, io, stdin),
        "sort" => sort(&args[1..], fs, io, stdin),
        "grep" => grep(&args[1..], fs, io, stdin),
        _ => {
            io.err(&format!("sh: {line}: {cmd}: not found\n"));
            127
        }
    }
}

fn ls(args: &[String], fs: &Fs, io: &mut Io) -> i32 {
    let (mut dir_flag, mut all, mut long) = (false, false, false);
    let mut operands: Vec<&str> = Vec::new();
    let mut options_done = false;
    for a in args {
        if options_done || a == "-" || !a.starts_with('-') {
            operands.push(a);
            continue;
        }
        if a == "--" {
            options_done = true;
            continue;
        }
        if let Some(long_opt) = a.strip_prefix("--") {
            match long_opt {
                "directory" => dir_flag = true,
                "all" => all = true,
                _ => {
                    io.err(&format!(
                        "ls: unrecognized option '{a}'\nTry 'ls --help' for more information.\n"
                    ));
                    return 2;
                }
            }
            continue;
        }
        for f in a.chars().skip(1) {
            match f {
                '1' => {}
                'd' => dir_flag = true,
                'a' => all = true,
                'l' => long = true,
                other => {
                    io.err(&format!(
                        "ls: invalid option -- '{other}'\nTry 'ls --help' for more information.\n"
                    ));
                    return 2;
                }
            }
        }
    }
    let many = operands.len() > 1;
    if operands.is_empty() {
        operands.push(".");
    }
    let mut status = 0;
    let mut files: Vec<(&str, Node)> = Vec::new();
    let mut dirs: Vec<(&str, String)> = Vec::new();
    for op in &operands {
        let abs = if op.starts_with('/') {
            normalise(op)
        } else {
            normalise(&format!("{CWD}/{op}"))
        };
        match fs.lookup(&abs) {
            None => {
                io.err(&format!(
                    "ls: cannot access '{op}': No such file or directory\n"
                ));
                status = 2;
            }
            Some(Node::Dir) if !dir_flag => dirs.push((op, abs)),
            Some(node) => files.push((op, node)),
        }
    }
    files.sort_by(|a, b| a.0.cmp(b.0));
    dirs.sort_by(|a, b| a.0.cmp(b.0));
    let entry = |name: &str, node: Node| -> String {
        if long {
            match node {
                Node::Dir => format!("drwxr-xr-x 2 root root 4096 Jan  1  2025 {name}\n"),
                Node::File(size) => {
                    format!("-rw-r--r-- 1 root root {size} Jan  1  2025 {name}\n")
                }
            }
        } else {
            format!("{name}\n")
        }
    };
    let mut out = String::new();
    for (name, node) in &files {
        out.push_str(&entry(name, *node));
    }
    for (k, (name, abs)) in dirs.iter().enumerate() {
        if !files.is_empty() || k > 0 {
            out.push('\n');
        }
        if many || !files.is_empty() {
            out.push_str(&format!("{name}:\n"));
        }
        let mut children: Vec<String> = fs
            .children(abs)
            .into_iter()
            .filter(|n| all || !n.starts_with('.'))
            .collect();
        if all {
            children.insert(0, "..".into());
            children.insert(0, ".".into());
        }
        if long {
            out.push_str(&format!("total {}\n", children.len() * 4));
        }
        for c in children {
            let node = if c == "." || c == ".." {
                Node::Dir
            } else {
                fs.lookup(&format!("{abs}/{c}")).unwrap_or(Node::File(0))
            };
            out.push_str(&entry(&c, node));
        }
    }
    io.out(&out);
    status
}

/// The inputs of a filter, in order: its file operands (`-` is stdin), or stdin alone. A
/// missing file or a directory is the `<tool>: F: …` message to print when its turn comes.
fn inputs(
    tool: &str,
    files: &[&str],
    fs: &Fs,
    stdin: &[u8],
) -> Vec<Result<(String, Vec<u8>), String>> {
    if files.is_empty() {
        return vec![Ok(("(standard input)".into(), stdin.to_vec()))];
    }
    files
        .iter()
        .map(|f| {
            if *f == "-" {
                return Ok(("(standard input)".into(), stdin.to_vec()));
            }
            let abs = if f.starts_with('/') {
                normalise(f)
            } else {
                normalise(&format!("{CWD}/{f}"))
            };
            match fs.lookup(&abs) {
                None => Err(format!("{tool}: {f}: No such file or directory\n")),
                Some(Node::Dir) => Err(format!("{tool}: {f}: Is a directory\n")),
                Some(Node::File(_)) => Ok(((*f).to_string(), fs.read(&abs).unwrap_or_default())),
            }
        })
        .collect()
}

/// Options with their values, and the operands.
type Parsed<'a> = (Vec<(char, Option<&'a str>)>, Vec<&'a str>);

/// Splits options (`-abc`, `-c N`, `-cN`) from operands; `--` ends the options. `with_value`
/// are the options taking an argument.
fn getopt<'a>(
    tool: &str,
    args: &'a [String],
    flags: &str,
    with_value: &str,
    io: &mut Io,
) -> Option<Parsed<'a>> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut it = args.iter();
    let mut done = false;
    while let Some(a) = it.next() {
        if done || a == "-" || !a.starts_with('-') {
            operands.push(a.as_str());
            continue;
        }
        if a == "--" {
            done = true;
            continue;
        }
        let chars: Vec<char> = a.chars().skip(1).collect();
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            if with_value.contains(c) {
                let rest: String = chars[k + 1..].iter().collect();
                let value = if rest.is_empty() {
                    match it.next() {
                        Some(v) => v.as_str(),
                        None => {
                            io.err(&format!("{tool}: option requires an argument -- '{c}'\n"));
                            return None;
                        }
                    }
                } else {
                    // The rest of this word is the value: keep it borrowed from `a`.
                    &a[1 + chars[..=k].iter().map(|c| c.len_utf8()).sum::<usize>()..]
                };
                opts.push((c, Some(value)));
                break;
            }
            if !flags.contains(c) {
                io.err(&format!(
                    "{tool}: invalid option -- '{c}'\nTry '{tool} --help' for more information.\n"
                ));
                return None;
            }
            opts.push((c, None));
            k += 1;
        }
    }
    Some((opts, operands))
}

fn cat(args: &[String], fs: &Fs, io: &mut Io, stdin: &[u8]) -> i32 {
    let Some((_, files)) = getopt("cat", args, "", "", io) else {
        return 1;
    };
    let mut bad = false;
    for input in inputs("cat", &files, fs, stdin) {
        match input {
            Ok((_, bytes)) => io.out_bytes(&bytes),
            Err(e) => {
                io.err(&e);
                bad = true;
            }
        }
    }
    i32::from(bad)
}

fn head(args: &[String], fs: &Fs, io: &mut Io, stdin: &[u8]) -> i32 {
    let Some((opts, files)) = getopt("head", args, "", "cn", io) else {
        return 1;
    };
    let (mut bytes_mode, mut count) = (false, 10usize);
    for (o, v) in opts {
        let v = v.unwrap_or("");
        let Ok(n) = v.parse::<usize>() else {
            let what = if o == 'c' { "bytes" } else { "lines" };
            io.err(&format!("head: invalid number of {what}: '{v}'\n"));
            return 1;
        };
        (bytes_mode, count) = (o == 'c', n);
    }
    let mut bad = false;
    let all = inputs("head", &files, fs, stdin);
    let many = all.len() > 1;
    for (k, input) in all.iter().enumerate() {
        let (name, data) = match input {
            Ok(ok) => ok,
            Err(e) => {
                // GNU head words it `head: cannot open 'F' for reading: …`.
                let (file, why) = e
                    .trim_start_matches("head: ")
                    .rsplit_once(": ")
                    .unwrap_or(("", e));
                io.err(&format!("head: cannot open '{file}' for reading: {why}"));
                bad = true;
                continue;
            }
        };
        if many {
            io.out(&format!(
                "{}==> {name} <==\n",
                if k > 0 { "\n" } else { "" }
            ));
        }
        let end = if bytes_mode {
            count.min(data.len())
        } else {
            data.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(count.wrapping_sub(1))
                .map_or(if count == 0 { 0 } else { data.len() }, |(p, _)| p + 1)
        };
        io.out_bytes(&data[..end]);
    }
    i32::from(bad)
}

fn lines_of(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n')
        .filter(move |_| !data.is_empty())
}

fn sort(args: &[String], fs: &Fs, io: &mut Io, stdin: &[u8]) -> i32 {
    let Some((opts, files)) = getopt("sort", args, "u", "", io) else {
        return 2;
    };
    let unique = opts.iter().any(|(o, _)| *o == 'u');
    let mut all = Vec::new();
    for input in inputs("sort", &files, fs, stdin) {
        match input {
            Ok((_, d)) => all.push(d),
            Err(e) => {
                io.err(&e.replacen("sort: ", "sort: cannot read: ", 1));
                return 2;
            }
        }
    }
    let mut lines: Vec<&[u8]> = all.iter().flat_map(|d| lines_of(d)).collect();
    lines.sort();
    if unique {
        lines.dedup();
    }
    for l in lines {
        io.out_bytes(l);
        io.out("\n");
    }
    0
}

/// A POSIX basic regular expression in the `regex` crate's syntax: `\(`, `\)`, `\{`, `\}`,
/// `\|`, `\+`, `\?` are the operators, their bare forms literal.
fn bre_to_ere(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('(' | ')' | '{' | '}' | '|' | '+' | '?')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str("\\\\"),
            },
            '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn grep(args: &[String], fs: &Fs, io: &mut Io, stdin: &[u8]) -> i32 {
    let Some((opts, operands)) = getopt("grep", args, "aoHhEFivcqs", "e", io) else {
        return 2;
    };
    let has = |c: char| opts.iter().any(|(o, _)| *o == c);
    let mut operands = operands.into_iter();
    let pattern = match opts.iter().find(|(o, _)| *o == 'e') {
        Some((_, Some(p))) => p.to_string(),
        _ => match operands.next() {
            Some(p) => p.to_string(),
            None => {
                io.err("Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n");
                return 2;
            }
        },
    };
    let files: Vec<&str> = operands.collect();
    let source = if has('F') {
        regex::escape(&pattern)
    } else if has('E') {
        pattern.clone()
    } else {
        bre_to_ere(&pattern)
    };
    let re = match regex::bytes::RegexBuilder::new(&source)
        .case_insensitive(has('i'))
        .unicode(false)
        .build()
    {
        Ok(r) => r,
        Err(_) => {
            io.err("grep: Invalid regular expression\n");
            return 2;
        }
    };
    let mut bad = false;
    let prefix = (files.len() > 1 || has('H')) && !has('h');
    let mut selected = false;
    for input in inputs("grep", &files, fs, stdin) {
        let (name, data) = match input {
            Ok(ok) => ok,
            Err(e) => {
                if !has('s') {
                    io.err(&e);
                }
                bad = true;
                continue;
            }
        };
        let binary = !has('a') && data.contains(&0);
        let mut count = 0usize;
        let mut shown = Vec::new();
        for line in lines_of(&data) {
            if re.is_match(line) == has('v') {
                continue;
            }
            count += 1;
            if has('o') && !has('v') {
                for m in re.find_iter(line).filter(|m| !m.as_bytes().is_empty()) {
                    shown.push(m.as_bytes().to_vec());
                }
            } else {
                shown.push(line.to_vec());
            }
        }
        selected |= count > 0;
        if has('q') {
            continue;
        }
        let lead = if prefix {
            format!("{name}:")
        } else {
            String::new()
        };
        if has('c') {
            io.out(&format!("{lead}{count}\n"));
        } else if binary && count > 0 {
            io.err(&format!("grep: {name}: binary file matches\n"));
        } else if !binary {
            for l in shown {
                io.out(&lead);
                io.out_bytes(&l);
                io.out("\n");
            }
        }
    }
    if has('q') && selected {
        0
    } else if bad {
        2
    } else {
        i32::from(!selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> Fs {
        let mut fs = Fs::new();
        for f in [
            "/bin/sh",
            "/bin/ls",
            "/app/Elsa.Server.Web.dll",
            "/app/Elsa.EntityFrameworkCore.PostgreSql.dll",
            "/app/Npgsql.dll",
            "/app/App_Data/elsa.sqlite.db",
            "/app/App_Data/elsa.sqlite.db-wal",
            "/app/.hidden.dll",
        ] {
            fs.add(f, 10);
        }
        fs
    }

    fn sh(script: &str) -> (String, String, Exit) {
        let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        let o = exec(&argv, &fs(), true);
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.exit,
        )
    }

    #[test]
    fn the_doctors_script() {
        let (out, err, exit) = sh(
            "ls -1d -- /app/*.dll /app/App_Data/elsa.sqlite.db /app/App_Data/elsa.sqlite.db-wal /app/App_Data/elsa.sqlite.db-shm /app/elsa.sqlite.db 2>/dev/null; echo \"elsadoctor:ls=$?\"",
        );
        assert_eq!(
            out,
            "/app/App_Data/elsa.sqlite.db\n/app/App_Data/elsa.sqlite.db-wal\n/app/Elsa.EntityFrameworkCore.PostgreSql.dll\n/app/Elsa.Server.Web.dll\n/app/Npgsql.dll\nelsadoctor:ls=2\n"
        );
        assert_eq!(err, "");
        assert_eq!(exit, Exit::Code(0));
    }

    #[test]
    fn ls_semantics() {
        let (out, err, exit) = sh("ls /nope /app/Npgsql.dll");
        assert_eq!(out, "/app/Npgsql.dll\n");
        assert_eq!(
            err,
            "ls: cannot access '/nope': No such file or directory\n"
        );
        assert_eq!(exit, Exit::Code(2));
        let (out, _, exit) = sh("ls /app/App_Data");
        assert_eq!(out, "elsa.sqlite.db\nelsa.sqlite.db-wal\n");
        assert_eq!(exit, Exit::Code(0));
        let (out, _, _) = sh("ls -a /app/App_Data");
        assert!(out.starts_with(".\n..\n"));
        let (out, _, _) = sh("ls /app/*.x '/app/*.dll'");
        assert_eq!(out, "");
        let (_, err, exit) = sh("ls -z");
        assert!(err.starts_with("ls: invalid option -- 'z'"));
        assert_eq!(exit, Exit::Code(2));
        let (out, _, _) = sh("ls -d /app/App_Data/elsa.sqlite.d?");
        assert_eq!(out, "/app/App_Data/elsa.sqlite.db\n");
        let (out, _, _) = sh("ls -d /app/.*.dll");
        assert_eq!(out, "/app/.hidden.dll\n");
        let (out, _, _) = sh("ls -ld /app/Npgsql.dll");
        assert!(out.starts_with("-rw-r--r-- 1 root root 10 "), "{out}");
    }

    #[test]
    fn shell_grammar() {
        assert_eq!(
            sh("echo 'a  b' \"c $?\"; false; echo $?").0,
            "a  b c 0\n1\n"
        );
        assert_eq!(sh("exit 3; echo no").2, Exit::Code(3));
        assert_eq!(sh("ls /nope >/dev/null 2> /dev/null").1, "");
        let (_, err, exit) = sh("curl x");
        assert_eq!(err, "sh: 1: curl: not found\n");
        assert_eq!(exit, Exit::Code(127));
        let (_, err, exit) = sh("echo a || cat");
        assert_eq!(err, "sh: 1: Syntax error: \"||\" unexpected\n");
        assert_eq!(exit, Exit::Code(2));
        assert_eq!(sh("| cat").2, Exit::Code(2));
        assert_eq!(
            sh("echo a |").1,
            "sh: 1: Syntax error: end of file unexpected\n"
        );
        let (_, err, _) = sh("echo 'open");
        assert_eq!(err, "sh: 1: Syntax error: Unterminated quoted string\n");
        let (_, err, _) = sh("true\nnope");
        assert_eq!(err, "sh: 2: nope: not found\n");
        assert_eq!(sh("; true").2, Exit::Code(2));
        assert_eq!(sh("exit x").2, Exit::Code(2));
        assert_eq!(sh("echo \\*").0, "*\n");
    }

    #[test]
    fn pipes_and_filters() {
        let mut fs = fs();
        fs.add_bytes(
            "/app/Elsa.EntityFrameworkCore.Sqlite.dll",
            b"MZ\x00\x01\x00\x1320250530104854_V3_5\x00\x00\x01\x00\x1620231024160800_Initial\x00x20250530104854_V3_5\x00".to_vec(),
        );
        fs.add_bytes("/app/a.txt", b"b\na\nb\nc\n".to_vec());
        let run = |script: &str| {
            let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
            let o = exec(&argv, &fs, true);
            (
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
                o.exit,
            )
        };
        let (out, err, exit) = run(
            "grep -aoHE '[0-9]{14}_(V3_[0-9]+|Initial)' /app/Elsa.EntityFrameworkCore.Sqlite.dll /app/nope.dll 2>/dev/null | sort -u | head -c 200; echo \"end=$?\"",
        );
        assert_eq!(
            out,
            "/app/Elsa.EntityFrameworkCore.Sqlite.dll:20231024160800_Initial\n/app/Elsa.EntityFrameworkCore.Sqlite.dll:20250530104854_V3_5\nend=0\n"
        );
        assert_eq!(err, "");
        assert_eq!(exit, Exit::Code(0));
        // Without -a a binary file only says that it matches, on stderr; a missing file is 2.
        let (out, err, exit) =
            run("grep -oE 'V3_[0-9]' /app/Elsa.EntityFrameworkCore.Sqlite.dll /app/nope");
        assert_eq!(out, "");
        assert_eq!(
            err,
            "grep: /app/Elsa.EntityFrameworkCore.Sqlite.dll: binary file matches\ngrep: /app/nope: No such file or directory\n"
        );
        assert_eq!(exit, Exit::Code(2));
        assert_eq!(run("grep zz /app/a.txt; echo $?").0, "1\n");
        assert_eq!(run("grep 'b\\|c' /app/a.txt").0, "b\nb\nc\n");
        assert_eq!(run("cat /app/a.txt | sort -u").0, "a\nb\nc\n");
        assert_eq!(run("head -n 2 /app/a.txt").0, "b\na\n");
        assert_eq!(run("head -c3 /app/a.txt").0, "b\na");
        assert_eq!(run("cat /app/a.txt | head -c 1 | cat").0, "b");
        let (_, err, exit) = run("cat /nope");
        assert_eq!(err, "cat: /nope: No such file or directory\n");
        assert_eq!(exit, Exit::Code(1));
        assert_eq!(run("head -c x /app/a.txt").2, Exit::Code(1));
        assert_eq!(run("sort -z").2, Exit::Code(2));
        assert_eq!(run("nope | cat").1, "sh: 1: nope: not found\n");
    }

    #[test]
    fn runtime_answers() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = exec(&argv(&["sh", "-c", "true"]), &fs(), false);
        assert_eq!(o.exit, Exit::NotFound("sh".into()));
        let o = exec(&argv(&["curl"]), &fs(), true);
        assert_eq!(o.exit, Exit::NotFound("curl".into()));
        let o = exec(&argv(&["ls", "/app/Npgsql.dll"]), &fs(), true);
        assert_eq!(o.stdout, b"/app/Npgsql.dll\n");
        let o = exec(&argv(&["/bin/sh", "-c", "exit 4"]), &fs(), true);
        assert_eq!(o.exit, Exit::Code(4));
    }
}
