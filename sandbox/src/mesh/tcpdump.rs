//! `tcpdump` in the istio-proxy container, as the workshop runs it:
//! `sudo tcpdump -l --immediate-mode -vv -s 0 '(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)'`.
//!
//! The packets are what the pod's inbound recording point ([`crate::net::capture`]) sees from
//! the moment the capture starts — the bytes on the wire in front of the sidecar (TLS between
//! sidecars, plaintext from a client without one), with each connection's handshake and
//! teardown — synthesized into a pcap stream ([`crate::net::pcap`]) that the host's real
//! `tcpdump` reads on its standard input (`tcpdump -r -`), packet by packet as they happen.
//! Every flag and filter expression therefore behaves as the real tool's, and a bad filter
//! gets tcpdump's own message and exit code.
//!
//! The command line is parsed as tcpdump 4.99 parses it (getopt_long with its SHORTOPTS and
//! long options, the-tcpdump-group/tcpdump tcpdump.c, tag tcpdump-4.99.3 — Debian 12's; the
//! proxyv2 image's ubuntu:noble has 4.99.4) and passed on unchanged, except:
//!
//! - `-r -` is added: the packets come as a savefile on stdin.
//! - `-n` is added: tcpdump in the pod resolves addresses through the pod's DNS (cluster DNS
//!   answers pod IPs' reverse lookups); the host's resolver knows nothing of the sandbox's
//!   loopback addresses and could wait for DNS timeouts on each. Addresses and ports print as
//!   numbers (`-n` also turns off port names, addrtoname.c init_addrtoname).
//! - `-i eth0` is dropped: the stream is eth0's (the pod's one interface); another name gets
//!   the live error of a missing device, and `lo`/`any` are refused — the sandbox records only
//!   eth0.
//! - `--immediate-mode` is dropped: it only configures a live interface
//!   (pcap_set_immediate_mode in open_interface); the stream hands over each packet as it
//!   happens anyway. `-f` is dropped (tcpdump refuses it with `-r`; with `-n` it changes
//!   nothing), and `-y EN10MB` (eth0's only link-type; setting one needs a live interface).
//! - Options that read or write the container's files or run commands (`-r -V -F -w FILE -C -G
//!   -W -z -m`) and the listings of the host's interfaces and types (`-D -L -J`) are refused
//!   with a message that says so; `-w -` (the capture as pcap on stdout) works.
//!
//! On stderr, tcpdump's `reading from file -, …` is turned back into the live capture's
//! `listening on eth0, …` (with `verbose output suppressed …` when tcpdump prints it, tcpdump.c
//! main), and when `-c N` ends the capture the statistics a live capture prints (tcpdump.c
//! info) follow.
//!
//! Without `sudo` the capture fails as it does for the proxy's user 1337, with libpcap's
//! permission error. The capture ends after `-c` packets, when the exec session goes away
//! (kubectl exec ended, connection closed), or when the pod stops; tcpdump is the sandbox's
//! child with the parent-death signal ([`crate::process`]), killed when the session ends.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use futures::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::cri::{ExecExit, ExecSession};
use crate::net::PodNet;
use crate::net::pcap::{DEFAULT_SNAPLEN, Synthesizer};

/// The one interface a pod has, as the workshop names it.
const INTERFACE: &str = "eth0";

/// tcpdump 4.99.3's short options on Linux with libpcap 1.10 (tcpdump.c SHORTOPTS with
/// B_FLAG, D_FLAG, I_FLAG, j_FLAG, J_FLAG, Q_FLAG, U_FLAG defined): a letter followed by `:`
/// takes an argument.
const SHORTOPTS: &str = "aAbB:c:C:dDeE:fF:G:hHi:Ij:JKlLm:M:nNOpqQ:r:s:StT:uUvV:w:W:xXy:Yz:Z:#";

/// tcpdump 4.99.3's long options (tcpdump.c longopts): name, takes an argument, the short
/// option it stands for (if any).
const LONGOPTS: &[(&str, bool, Option<char>)] = &[
    ("buffer-size", true, Some('B')),
    ("list-interfaces", false, Some('D')),
    ("help", false, Some('h')),
    ("interface", true, Some('i')),
    ("monitor-mode", false, Some('I')),
    ("time-stamp-type", true, Some('j')),
    ("list-time-stamp-types", false, Some('J')),
    ("micro", false, None),
    ("nano", false, None),
    ("time-stamp-precision", true, None),
    ("dont-verify-checksums", false, Some('K')),
    ("list-data-link-types", false, Some('L')),
    ("no-optimize", false, Some('O')),
    ("no-promiscuous-mode", false, Some('p')),
    ("direction", true, Some('Q')),
    ("snapshot-length", true, Some('s')),
    ("absolute-tcp-sequence-numbers", false, Some('S')),
    ("packet-buffered", false, Some('U')),
    ("linktype", true, Some('y')),
    ("immediate-mode", false, None),
    ("debug-filter-parser", false, Some('Y')),
    ("relinquish-privileges", true, Some('Z')),
    ("count", false, None),
    ("fp-type", false, None),
    ("number", false, Some('#')),
    ("print", false, None),
    ("version", false, None),
];

/// One element of a parsed tcpdump command line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Arg {
    /// A short option (or a long one that stands for it), with its argument.
    Short(char, Option<String>),
    /// A long option without a short form, by its full name.
    Long(&'static str, Option<String>),
    /// Something getopt would refuse (unknown, ambiguous, missing argument): passed on as
    /// written so tcpdump prints its own error.
    Raw(String),
    /// A word of the filter expression.
    Operand(String),
}

/// Parse `args` as GNU getopt_long does for tcpdump (options and operands may be mixed; `--`
/// ends the options; long options may be abbreviated to a unique prefix).
fn parse(args: &[String]) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut only_operands = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_operands || arg == "-" || !arg.starts_with('-') {
            out.push(Arg::Operand(arg.clone()));
            continue;
        }
        if arg == "--" {
            only_operands = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let exact = LONGOPTS.iter().find(|(n, _, _)| *n == name);
            let prefixed: Vec<_> = LONGOPTS
                .iter()
                .filter(|(n, _, _)| n.starts_with(name))
                .collect();
            let Some(&(full, takes, short)) = exact.or(match prefixed.as_slice() {
                [one] => Some(*one),
                _ => None,
            }) else {
                out.push(Arg::Raw(arg.clone()));
                continue;
            };
            let value = if takes {
                match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => {
                        out.push(Arg::Raw(arg.clone()));
                        continue;
                    }
                }
            } else if inline.is_some() {
                out.push(Arg::Raw(arg.clone()));
                continue;
            } else {
                None
            };
            out.push(match short {
                Some(c) => Arg::Short(c, value),
                None => Arg::Long(full, value),
            });
            continue;
        }
        let letters: Vec<char> = arg[1..].chars().collect();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            j += 1;
            let Some(at) = SHORTOPTS.find(c).filter(|_| c != ':') else {
                out.push(Arg::Raw(format!("-{c}")));
                continue;
            };
            if SHORTOPTS[at + c.len_utf8()..].starts_with(':') {
                let rest: String = letters[j..].iter().collect();
                j = letters.len();
                if !rest.is_empty() {
                    out.push(Arg::Short(c, Some(rest)));
                } else if i < args.len() {
                    i += 1;
                    out.push(Arg::Short(c, Some(args[i - 1].clone())));
                } else {
                    out.push(Arg::Raw(format!("-{c}")));
                }
            } else {
                out.push(Arg::Short(c, None));
            }
        }
    }
    out
}

/// A command line the sandbox's tcpdump refuses before running: what it prints, its exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub code: i32,
}

fn refuse(message: String) -> UsageError {
    UsageError { message, code: 1 }
}

/// What the host's tcpdump runs with, and what the live capture would have said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The arguments for the host's `tcpdump` (starting with `-r -`).
    pub args: Vec<String>,
    /// The snapshot length (`-s`; 0 or none → 262144).
    pub snaplen: u32,
    /// `-c N`.
    pub count: Option<u64>,
    /// `-v` given (the live capture then omits "verbose output suppressed").
    pub verbose: bool,
    /// `-w` given.
    pub writes: bool,
    /// Only prints something and exits (`-h`, `--version`, `--fp-type`): captures nothing.
    pub informational: bool,
}

/// Translate a tcpdump command line (the words after `tcpdump`) for the host's tcpdump reading
/// the pod's packets on stdin; see the module doc for what changes and why.
pub fn plan(args: &[String]) -> Result<Plan, UsageError> {
    let mut out: Vec<String> = vec!["-r".into(), "-".into()];
    let mut operands: Vec<String> = Vec::new();
    let mut plan = Plan {
        args: Vec::new(),
        snaplen: DEFAULT_SNAPLEN,
        count: None,
        verbose: false,
        writes: false,
        informational: false,
    };
    let mut numeric = false;
    for arg in parse(args) {
        match arg {
            Arg::Operand(word) => operands.push(word),
            Arg::Raw(raw) => out.push(raw),
            Arg::Short(c, value) => {
                let value_str = value.as_deref().unwrap_or("");
                match c {
                    'r' | 'V' | 'F' | 'C' | 'G' | 'W' | 'z' | 'm' => {
                        return Err(refuse(format!(
                            "happy-sandbox: tcpdump -{c} is not available here: it reads or \
                             writes files in the container (or runs a command there), and the \
                             sandbox's containers have no filesystem of their own; -w - writes \
                             the capture to stdout\n"
                        )));
                    }
                    'w' if value_str != "-" => {
                        return Err(refuse(format!(
                            "happy-sandbox: tcpdump -w {value_str} is not available here: the \
                             sandbox's containers have no filesystem of their own; -w - writes \
                             the capture to stdout (kubectl exec … -w - > capture.pcap)\n"
                        )));
                    }
                    'D' | 'L' | 'J' => {
                        return Err(refuse(format!(
                            "happy-sandbox: tcpdump -{c} is not available here: it lists the \
                             host's interfaces; the sandbox's pod has one, {INTERFACE} \
                             (link-type EN10MB)\n"
                        )));
                    }
                    'i' => match value_str {
                        INTERFACE => continue,
                        "any" | "lo" => {
                            return Err(refuse(format!(
                                "happy-sandbox: tcpdump -i {value_str} is not available here: \
                                 the sandbox records a pod's traffic on {INTERFACE} only (what \
                                 enters the pod in front of its sidecar), not on its loopback\n"
                            )));
                        }
                        // libpcap 1.10's error for a device that does not exist, as tcpdump
                        // prints it (tcpdump.c open_interface: "%s: %s\n(%s)").
                        other => {
                            return Err(refuse(format!(
                                "tcpdump: {other}: No such device exists\n(No such device exists)\n"
                            )));
                        }
                    },
                    'f' => continue,
                    'y' if value_str.eq_ignore_ascii_case("EN10MB") => continue,
                    'y' => {
                        return Err(refuse(format!(
                            "tcpdump: {value_str} is not one of the DLTs supported by this device\n"
                        )));
                    }
                    'n' => numeric = true,
                    'v' => plan.verbose = true,
                    'w' => plan.writes = true,
                    'h' => plan.informational = true,
                    // As tcpdump reads them: strtol base 0 for -s, atoi for -c; tcpdump
                    // itself refuses bad values.
                    's' => {
                        let n = parse_c_long(value_str).unwrap_or(0);
                        plan.snaplen = if (1..=i64::from(DEFAULT_SNAPLEN)).contains(&n) {
                            n as u32
                        } else {
                            DEFAULT_SNAPLEN
                        };
                    }
                    'c' => plan.count = value_str.trim().parse::<u64>().ok().filter(|&n| n > 0),
                    _ => {}
                }
                out.push(format!("-{c}"));
                if let Some(v) = value {
                    out.push(v);
                }
            }
            Arg::Long(name, value) => {
                match name {
                    "immediate-mode" => continue,
                    "version" | "fp-type" => plan.informational = true,
                    _ => {}
                }
                out.push(format!("--{name}"));
                if let Some(v) = value {
                    out.push(v);
                }
            }
        }
    }
    if !numeric {
        out.push("-n".into());
    }
    if !operands.is_empty() {
        out.push("--".into());
        out.extend(operands);
    }
    plan.args = out;
    Ok(plan)
}

/// A number as C's strtol with base 0 reads it: decimal, 0x… hex or 0… octal.
fn parse_c_long(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// Where the host's tcpdump is: Debian's `/usr/bin/tcpdump` (or `/usr/sbin/tcpdump`), else the
/// first `tcpdump` on PATH.
pub fn find_tcpdump() -> Option<PathBuf> {
    for usual in ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"] {
        if Path::new(usual).is_file() {
            return Some(PathBuf::from(usual));
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("tcpdump"))
        .find(|p| p.is_file())
}

/// An exec session that prints `message` on stderr and exits with `code`.
fn refused(stdin: bool, message: String, code: i32) -> ExecSession {
    ExecSession {
        stdin: stdin.then(|| Box::pin(tokio::io::sink()) as Pin<Box<dyn AsyncWrite + Send>>),
        stdout: Box::pin(tokio::io::empty()),
        stderr: Box::pin(std::io::Cursor::new(message.into_bytes())),
        exit: futures::future::ready(ExecExit { code }).boxed(),
    }
}

/// The live capture's first stderr line(s) for tcpdump's `reading from file -, …` line
/// (tcpdump.c main, live branch), or `None` for any other line.
fn live_announcement(line: &str, plan: &Plan) -> Option<String> {
    let rest = line.strip_prefix("reading from file -, ")?;
    let link = rest.split(", snapshot length ").next()?;
    let intro = if !plan.verbose && !plan.writes {
        "tcpdump: verbose output suppressed, use -v[v]... for full protocol decode\n"
    } else {
        "tcpdump: "
    };
    Some(format!(
        "{intro}listening on {INTERFACE}, {link}, snapshot length {} bytes\n",
        plan.snaplen
    ))
}

/// tcpdump's statistics at the end of a live capture (tcpdump.c info(1)).
fn statistics(captured: u64) -> String {
    let s = |n: u64| if n == 1 { "" } else { "s" };
    format!(
        "{captured} packet{} captured\n{captured} packet{} received by filter\n0 packets dropped by kernel\n",
        s(captured),
        s(captured)
    )
}

/// Run `tcpdump ARGS` (the words after `tcpdump`; `privileged` when run through `sudo`) on the
/// pod whose network is `net`; it ends after `-c` packets, or when `pod_cancel` fires or the
/// session's exit future is dropped.
pub fn run_tcpdump(
    args: &[String],
    net: Arc<PodNet>,
    stdin: bool,
    privileged: bool,
    pod_cancel: CancellationToken,
) -> ExecSession {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(e) => return refused(stdin, e.message, e.code),
    };
    if !privileged && !plan.informational {
        // The proxy runs as user 1337 without capabilities: libpcap's error for a socket it
        // may not open, as tcpdump prints it (tcpdump.c open_interface).
        return refused(
            stdin,
            format!(
                "tcpdump: {INTERFACE}: You don't have permission to perform this capture on that \
                 device\n(socket: Operation not permitted)\n"
            ),
            1,
        );
    }
    let Some(tcpdump) = find_tcpdump() else {
        return refused(
            stdin,
            "happy-sandbox: tcpdump is not installed on this host (looked for /usr/bin/tcpdump, \
             /usr/sbin/tcpdump and on PATH); install Debian's tcpdump package to capture in \
             istio-proxy\n"
                .into(),
            126,
        );
    };
    let mut cmd = tokio::process::Command::new(&tcpdump);
    cmd.args(&plan.args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        // The proxy image has no time zone configured: times print in UTC.
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match crate::process::spawn_tied(cmd) {
        Ok(c) => c,
        Err(e) => {
            return refused(
                stdin,
                format!("happy-sandbox: cannot run {}: {e}\n", tcpdump.display()),
                126,
            );
        }
    };
    let (Some(mut packets_in), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return refused(
            stdin,
            "happy-sandbox: tcpdump's pipes were not set up\n".into(),
            126,
        );
    };

    let capture = net.capture().clone();
    // Only what arrives from now on, as a capture that starts now would see.
    let mut position = capture.next_seq();
    let mut announced = capture.subscribe();
    let session = pod_cancel.child_token();
    let stop = session.clone();
    let pod_ip: Ipv4Addr = net.ip();
    let snaplen = plan.snaplen;
    // The feeder: the pcap header, then every record's packets as they are recorded, until
    // tcpdump stops reading (it exited: -c reached, or a bad filter) or the session ends.
    let feeder = net.tracker().spawn(async move {
        let mut synth = Synthesizer::new(pod_ip, snaplen);
        let mut written = 0u64;
        if packets_in.write_all(&synth.header()).await.is_err() {
            return written;
        }
        'feed: loop {
            let mut batch = Vec::new();
            for record in capture.since(position) {
                position = record.seq + 1;
                for p in synth.packets(&record) {
                    batch.extend_from_slice(&p);
                    written += 1;
                }
            }
            if !batch.is_empty()
                && (packets_in.write_all(&batch).await.is_err()
                    || packets_in.flush().await.is_err())
            {
                break 'feed;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = announced.changed() => if changed.is_err() { break },
            }
        }
        // Closing stdin ends tcpdump's read: it prints what it has and exits.
        drop(packets_in);
        written
    });

    let (mut err_out, err_reader) = tokio::io::duplex(64 * 1024);
    let stderr_plan = plan.clone();
    let stderr_task = net.tracker().spawn(async move {
        let mut lines = BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = live_announcement(&line, &stderr_plan).unwrap_or_else(|| line.clone());
            if err_out.write_all(text.as_bytes()).await.is_err() {
                break;
            }
        }
        err_out
    });

    // The supervisor: waits for tcpdump (or the session's end, then kills it), finishes
    // stderr, and reports the exit code. It runs on its own so that stdout and stderr reach
    // their end whether or not anyone awaits the exit.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<i32>();
    let count = plan.count;
    let supervised = session.clone();
    net.tracker().spawn(async move {
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = supervised.cancelled() => {
                let _ = child.kill().await;
                None
            }
        };
        supervised.cancel();
        let written = feeder.await.unwrap_or(0);
        let mut err_out = stderr_task.await.ok();
        let code = status.and_then(|s| s.code()).unwrap_or(137);
        // tcpdump reached -c on its own: a live capture then reports its statistics.
        if let (0, Some(n), Some(err)) = (code, count, err_out.as_mut())
            && written > 0
        {
            let _ = err.write_all(statistics(n).as_bytes()).await;
        }
        if let Some(mut err) = err_out {
            let _ = err.shutdown().await;
        }
        let _ = done_tx.send(code);
    });
    // Dropping the exit future (the client went away) ends the session, which kills tcpdump.
    let guard = session.drop_guard();
    let exit = async move {
        let code = done_rx.await.unwrap_or(137);
        drop(guard);
        ExecExit { code }
    }
    .boxed();
    ExecSession {
        stdin: stdin.then(|| Box::pin(tokio::io::sink()) as Pin<Box<dyn AsyncWrite + Send>>),
        stdout: Box::pin(stdout),
        stderr: Box::pin(err_reader),
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn workshop() -> Vec<String> {
        let mut w = words("-l --immediate-mode -vv -s 0");
        w.push("(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)".into());
        w
    }

    #[test]
    fn the_workshops_command_reads_the_stream() {
        let p = plan(&workshop()).unwrap();
        assert_eq!(
            p.args,
            [
                "-r",
                "-",
                "-l",
                "-v",
                "-v",
                "-s",
                "0",
                "-n",
                "--",
                "(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)"
            ]
        );
        assert_eq!((p.snaplen, p.count, p.verbose), (262_144, None, true));
        let suite = plan(&words("-l -nn -A -s 0 -i eth0 -c 20 tcp port 8080")).unwrap();
        assert_eq!(
            suite.args,
            words("-r - -l -n -n -A -s 0 -c 20 -- tcp port 8080")
        );
        assert_eq!(suite.count, Some(20));
        assert!(!suite.verbose);
    }

    #[test]
    fn getopt_rules_hold() {
        // Clustered letters with a value glued on, options after operands, abbreviations.
        let p = plan(&words("-nnAc5 port 80 -s0x100 --immed --snap=64")).unwrap();
        assert_eq!(
            p.args,
            words("-r - -n -n -A -c 5 -s 0x100 -s 64 -- port 80")
        );
        assert_eq!(p.count, Some(5));
        assert_eq!(p.snaplen, 64, "the last -s counts");
        assert!(p.args.windows(2).any(|w| w == ["-s", "0x100"]));
        assert!(!p.args.iter().any(|a| a.starts_with("--immed")));
        // Unknown and ambiguous options go to tcpdump as written, for its own error.
        let u = plan(&words("-X --bogus --li")).unwrap();
        assert!(u.args.contains(&"-X".to_string()));
        assert!(u.args.contains(&"--bogus".to_string()));
        assert!(u.args.contains(&"--li".to_string()));
        // A missing value too.
        assert_eq!(plan(&words("-c")).unwrap().args, words("-r - -c -n"));
        // After --, everything is the expression.
        assert_eq!(plan(&words("-- -c")).unwrap().args, words("-r - -n -- -c"));
    }

    #[test]
    fn what_cannot_apply_is_refused_or_dropped() {
        for bad in [
            "-w /tmp/x",
            "-r /etc/passwd",
            "-F f",
            "-z sh",
            "-D",
            "-V list",
        ] {
            let e = plan(&words(bad)).unwrap_err();
            assert!(
                e.message.starts_with("happy-sandbox: tcpdump -"),
                "{bad}: {e:?}"
            );
            assert_eq!(e.code, 1);
        }
        assert!(plan(&words("-w -")).unwrap().writes);
        let e = plan(&words("-i eth1")).unwrap_err();
        assert_eq!(
            e.message,
            "tcpdump: eth1: No such device exists\n(No such device exists)\n"
        );
        assert!(
            plan(&words("-i any"))
                .unwrap_err()
                .message
                .contains("eth0 only")
        );
        assert_eq!(
            plan(&words("-f -i eth0 -y en10mb --interface=eth0"))
                .unwrap()
                .args,
            words("-r - -n")
        );
        assert!(plan(&words("--version")).unwrap().informational);
    }

    #[test]
    fn stderr_reads_as_a_live_capture() {
        let p = plan(&workshop()).unwrap();
        assert_eq!(
            live_announcement(
                "reading from file -, link-type EN10MB (Ethernet), snapshot length 262144\n",
                &p
            )
            .unwrap(),
            "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n"
        );
        let quiet = plan(&words("-c 1")).unwrap();
        assert!(
            live_announcement(
                "reading from file -, link-type EN10MB (Ethernet), snapshot length 262144\n",
                &quiet
            )
            .unwrap()
            .starts_with("tcpdump: verbose output suppressed, use -v[v]... for full protocol decode\nlistening on eth0")
        );
        assert_eq!(live_announcement("tcpdump: syntax error\n", &p), None);
        assert_eq!(
            statistics(1),
            "1 packet captured\n1 packet received by filter\n0 packets dropped by kernel\n"
        );
    }

    /// A live capture on a pod of the sandbox network, with the workshop's own command: real
    /// tcpdump prints the plaintext exchange as it happens (-vv's HTTP printer), none of the
    /// bare handshake packets, and ends when the session is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_workshops_capture_runs_live() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if find_tcpdump().is_none() {
            eprintln!("SKIPPED: no tcpdump on this host (install Debian's tcpdump package)");
            return;
        }
        let network = crate::net::Network::new().unwrap();
        let pod = network
            .create_pod("istioinaction", "service-a-abc")
            .unwrap();
        let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        pod.expose(8080, app.local_addr().unwrap()).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = app.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        });
        let cancel = CancellationToken::new();
        let mut session = run_tcpdump(&workshop(), pod.clone(), false, true, cancel.clone());
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while !String::from_utf8_lossy(&out).contains("HTTP/1.1 200 OK") {
            let mut client = tokio::net::TcpStream::connect((pod.ip(), 8080))
                .await
                .unwrap();
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: service-a\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            if let Ok(Ok(n)) = tokio::time::timeout(
                std::time::Duration::from_millis(500),
                session.stdout.read(&mut chunk),
            )
            .await
            {
                out.extend_from_slice(&chunk[..n]);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(text.contains("\tGET / HTTP/1.1"), "{text}");
        assert!(text.contains(&format!("{}.8080", pod.ip())), "{text}");
        assert!(
            !text.contains("Flags [S]"),
            "the filter drops bare packets: {text}"
        );
        // The client went away: the session ends.
        drop(session.stdout);
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            cancel.cancel();
            session.exit.await
        })
        .await
        .expect("the capture ends");
        assert_eq!(exit.code, 137);
        let mut err = String::new();
        session.stderr.read_to_string(&mut err).await.unwrap();
        assert!(
            err.starts_with("tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes"),
            "{err}"
        );
        network.shutdown().await;
    }

    /// `-c N` ends the capture by itself, with a live capture's statistics; a bad filter gets
    /// tcpdump's own error; without sudo the capture is not permitted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_filters_and_permissions_are_tcpdumps() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if find_tcpdump().is_none() {
            eprintln!("SKIPPED: no tcpdump on this host (install Debian's tcpdump package)");
            return;
        }
        let network = crate::net::Network::new().unwrap();
        let pod = network
            .create_pod("istioinaction", "service-c-abc")
            .unwrap();
        let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        pod.expose(8080, app.local_addr().unwrap()).unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = app.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let cancel = CancellationToken::new();
        let mut session = run_tcpdump(
            &words("-l -nn -A -s 0 -i eth0 -c 3 tcp port 8080"),
            pod.clone(),
            false,
            true,
            cancel.clone(),
        );
        let mut client = tokio::net::TcpStream::connect((pod.ip(), 8080))
            .await
            .unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            session.stdout.read_to_string(&mut out),
        )
        .await
        .expect("tcpdump ends after 3 packets")
        .unwrap();
        let code = session.exit.await.code;
        let mut err = String::new();
        session.stderr.read_to_string(&mut err).await.unwrap();
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out.lines().filter(|l| l.contains("Flags [")).count(),
            3,
            "{out}"
        );
        assert!(out.contains("Flags [S]"), "the handshake: {out}");
        assert!(
            err.ends_with(
                "3 packets captured\n3 packets received by filter\n0 packets dropped by kernel\n"
            ),
            "{err}"
        );

        let bad = run_tcpdump(
            &words("-l tcp port"),
            pod.clone(),
            false,
            true,
            cancel.clone(),
        );
        let mut err = String::new();
        let mut stderr = bad.stderr;
        let code = bad.exit.await.code;
        stderr.read_to_string(&mut err).await.unwrap();
        assert_eq!(code, 1);
        assert!(
            err.contains("tcpdump: can't parse filter expression: syntax error"),
            "{err}"
        );

        let unprivileged = run_tcpdump(&words("-c 1"), pod.clone(), false, false, cancel.clone());
        let mut err = String::new();
        let mut stderr = unprivileged.stderr;
        assert_eq!(unprivileged.exit.await.code, 1);
        stderr.read_to_string(&mut err).await.unwrap();
        assert!(err.contains("You don't have permission"), "{err}");
        network.shutdown().await;
    }
}
