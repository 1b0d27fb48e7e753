//! The client commands `execd exec`, `execd fs …` and `execd ps`, run as a user
//! would: the real binary against a real server, checked through its stdio,
//! its exit code, its terminal and the files it writes.

mod common;

use common::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `execd ARGS`, reaching `url` through `EXECD_URL` (no token from the
/// environment); stdin empty, stdout and stderr captured; killed if dropped.
fn execd(url: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(execd_bin());
    cmd.args(args)
        .env("EXECD_URL", url)
        .env_remove("EXECD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// How a client command ended.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("utf-8 stdout")
    }

    /// Asserts a clean success; returns stdout.
    fn success(&self) -> String {
        assert_eq!(self.code, 0, "exit code; stderr: {}", self.stderr);
        self.stdout()
    }

    /// Asserts a client error (255, one `execd: ` message on stderr); returns the message.
    fn client_error(&self) -> &str {
        assert_eq!(self.code, 255, "a client error exits 255: {self:?}");
        assert!(self.stderr.starts_with("execd: "), "a client error says `execd: …` on stderr: {:?}", self.stderr);
        &self.stderr
    }
}

/// Runs `cmd` to completion with `input` on its stdin (then EOF).
async fn run_with(mut cmd: tokio::process::Command, input: &[u8]) -> Out {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn execd");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Dropping `stdin` at the end of the task is the EOF.
    let writer = tokio::spawn(async move { stdin.write_all(&input).await });
    let output = within("the execd client to exit", child.wait_with_output()).await.expect("wait execd");
    writer.await.expect("stdin writer").expect("write stdin");
    let code = output.status.code().unwrap_or_else(|| panic!("execd died of a signal: {:?}", output.status));
    Out { code, stdout: output.stdout, stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

/// Runs `cmd` to completion with an empty stdin.
async fn run(mut cmd: tokio::process::Command) -> Out {
    let child = cmd.spawn().expect("spawn execd");
    let output = within("the execd client to exit", child.wait_with_output()).await.expect("wait execd");
    let code = output.status.code().unwrap_or_else(|| panic!("execd died of a signal: {:?}", output.status));
    Out { code, stdout: output.stdout, stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

/// Deterministic pseudo-random bytes (xorshift64*).
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = &mut self.0;
            *x ^= *x >> 12;
            *x ^= *x << 25;
            *x ^= *x >> 27;
            let word = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        Noise(seed | 1).fill(&mut buf);
        buf
    }
}

/// Writes `len` pseudo-random bytes to `path`, 1 MiB at a time.
fn write_noise(path: &Path, seed: u64, len: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut noise = Noise(seed | 1);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        noise.fill(&mut buf[..n]);
        file.write_all(&buf[..n]).expect("write");
        left -= n as u64;
    }
    file.into_inner().expect("flush").sync_all().expect("sync");
}

/// Whether two files hold the same bytes (read 1 MiB at a time); panics with
/// the first differing offset otherwise.
fn assert_same_file(a: &Path, b: &Path) {
    let (mut fa, mut fb) = (std::fs::File::open(a).expect("open a"), std::fs::File::open(b).expect("open b"));
    let (la, lb) = (fa.metadata().expect("meta").len(), fb.metadata().expect("meta").len());
    assert_eq!(la, lb, "sizes of {} and {}", a.display(), b.display());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = fill(&mut fa, &mut ba);
        let m = fill(&mut fb, &mut bb);
        assert_eq!(n, m, "short read at {offset}");
        if n == 0 {
            return;
        }
        if ba[..n] != bb[..n] {
            let i = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y).unwrap_or(0);
            panic!("{} and {} differ at byte {}", a.display(), b.display(), offset + i as u64);
        }
        offset += n as u64;
    }
}

fn fill(file: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).expect("read") {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// SIGKILLs a std-spawned child unless it was reaped (a test that fails
/// half-way leaves nothing running).
struct KillUnlessReaped {
    pid: i32,
    reaped: bool,
}

impl Drop for KillUnlessReaped {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: plain syscall on a child we spawned and have not reaped.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }
}

/// Blocks in `wait4` for `pid`; returns its exit code and peak RSS (KiB).
fn wait4(pid: i32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.raw_os_error(), Some(libc::EINTR), "wait4({pid}): {e}");
    }
    assert!(libc::WIFEXITED(status), "execd did not exit normally (wait status {status:#x})");
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

/// The deadline of one 200 MiB transfer: about 10 s with the debug binary
/// here (base64, JSON and SHA-256 of every byte), so the common [`DEADLINE`]
/// would leave little margin on a loaded machine.
const TRANSFER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs `execd ARGS` against `url` to completion (under [`TRANSFER_DEADLINE`]);
/// returns how it ended (stdout is discarded) and its peak resident set size in
/// KiB, as `wait4` reports it.
///
/// The client is not spawned from this process directly: `ru_maxrss` also
/// counts the memory image a child had before its exec, which for a child of
/// this test process is this process's own peak (posix_spawn shares it) or
/// current RSS (fork copies it), tens of MiB with the other tests running. So
/// a small `sh` starts the client in the background and exits: the client's
/// pre-exec image is `sh`'s, and the orphan is adopted by this process (a child
/// subreaper), which reaps it with `wait4`.
async fn run_measured(url: &str, args: &[&str]) -> (Out, i64) {
    static SUBREAPER: std::sync::Once = std::sync::Once::new();
    SUBREAPER.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("become a child subreaper")
    });
    let mut sh = std::process::Command::new("sh")
        .args(["-c", r#""$@" </dev/null >/dev/null & echo $!"#, "sh", execd_bin()])
        .args(args)
        .env("EXECD_URL", url)
        .env_remove("EXECD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped()) // the client's stderr too
        .spawn()
        .expect("spawn sh");
    let mut sh_stdout = sh.stdout.take().expect("sh stdout");
    let mut stderr = sh.stderr.take().expect("stderr");
    // Once `sh` is reaped, its orphaned child is ours.
    let (pid, status) = within(
        "sh to start the client",
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            sh_stdout.read_to_string(&mut line).expect("read the client's pid");
            (line, sh.wait().expect("wait sh"))
        }),
    )
    .await
    .expect("join");
    assert!(status.success(), "sh: {status:?}");
    let pid: i32 = pid.trim().parse().unwrap_or_else(|_| panic!("the client's pid, got {pid:?}"));
    let mut guard = KillUnlessReaped { pid, reaped: false };
    let stderr = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (code, max_rss) = tokio::time::timeout(TRANSFER_DEADLINE, tokio::task::spawn_blocking(move || wait4(pid)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for `execd {}`", args.join(" ")))
        .expect("wait4");
    guard.reaped = true;
    let stderr = within("the execd client's stderr to end", stderr).await.expect("stderr reader");
    (Out { code, stdout: Vec::new(), stderr }, max_rss)
}

/// A fresh temp dir, removed with its contents on drop (also when a test fails).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        TempDir(temp_dir(name))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// exec: stdio and exit codes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exec_forwards_stdin_and_prints_stdout_exactly() {
    let server = Server::start(&[]);
    let out = run_with(execd(&server.url, &["exec", "--", "cat"]), b"hi\n").await;
    assert_eq!(out.success(), "hi\n");
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn exec_exits_with_the_remote_exit_code() {
    let server = Server::start(&[]);
    let cases: [(&[&str], i32); 5] = [
        (&["true"], 0),
        (&["sh", "-c", "exit 7"], 7),
        (&["sh", "-c", "exit 255"], 255),
        // A signal death is 128 + the signal, as a shell reports it.
        (&["sh", "-c", "kill -TERM $$"], 143),
        (&["sh", "-c", "kill -KILL $$"], 137),
    ];
    for (argv, code) in cases {
        let mut args = vec!["exec", "--"];
        args.extend_from_slice(argv);
        let out = run(execd(&server.url, &args)).await;
        assert_eq!(out.code, code, "{argv:?}: {out:?}");
        assert_eq!(out.stderr, "", "{argv:?}");
    }
}

#[tokio::test]
async fn ctrl_c_without_a_tty_interrupts_the_remote_process() {
    use tokio::io::AsyncBufReadExt;
    let server = Server::start(&[]);
    let mut child = execd(&server.url, &["exec", "--", "sh", "-c", "echo started; exec sleep 1000"])
        .spawn()
        .expect("spawn execd exec");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = within("the remote command to start", lines.next_line()).await.expect("read").expect("a line");
    assert_eq!(first, "started");
    // What a Ctrl-C on the local terminal delivers to the client.
    let pid = rustix::process::Pid::from_raw(child.id().expect("pid") as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
    let out = within("the client to exit", child.wait_with_output()).await.expect("wait");
    assert_eq!(out.status.code(), Some(130), "the remote sleep died of SIGINT (128 + 2): {out:?}");
}

#[tokio::test]
async fn a_missing_cwd_is_named() {
    let server = Server::start(&[]);
    let out = run(execd(&server.url, &["exec", "--cwd", "/nonexistent-dir", "--", "pwd"])).await;
    assert_eq!(out.client_error(), "execd: --cwd /nonexistent-dir: no such directory on the server\n");
}

#[tokio::test]
async fn exec_keeps_stderr_apart_from_stdout() {
    let server = Server::start(&[]);
    let out = run(execd(&server.url, &["exec", "--", "sh", "-c", "echo out; echo err >&2"])).await;
    assert_eq!(out.success(), "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[tokio::test]
async fn exec_round_trips_a_large_stdin_and_eof_ends_the_remote_stdin() {
    let server = Server::start(&[]);
    let input = Noise::bytes(0x5eed, 5 << 20);
    // `cat` only exits (and so the client only exits) once the local EOF closed its stdin.
    let out = run_with(execd(&server.url, &["exec", "--", "cat"]), &input).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout.len(), input.len(), "bytes back");
    assert!(out.stdout == input, "the bytes back differ from the bytes sent");
    // And a count on the far side: every byte reached the remote stdin.
    let out = run_with(execd(&server.url, &["exec", "--", "wc", "-c"]), &input).await;
    assert_eq!(out.success().trim(), (5 << 20).to_string());
}

#[tokio::test]
async fn exec_honours_cwd_and_env() {
    let server = Server::start(&[]);
    let dir = TempDir::new("cli-cwd");
    let dir_str = dir.str();
    let out = run(execd(&server.url, &["exec", "--cwd", dir_str, "--", "pwd"])).await;
    assert_eq!(out.success(), format!("{dir_str}\n"));
    let out =
        run(execd(&server.url, &["exec", "--env", "FOO=bar baz", "--env", "N=1", "--", "sh", "-c", "echo $FOO/$N"]))
            .await;
    assert_eq!(out.success(), "bar baz/1\n");
    // The client's own environment does not leak into the remote command.
    let mut cmd = execd(&server.url, &["exec", "--", "sh", "-c", "echo \"[$EXECD_CLI_TEST_LOCAL]\""]);
    cmd.env("EXECD_CLI_TEST_LOCAL", "leaked");
    assert_eq!(run(cmd).await.success(), "[]\n");
    // A bad --env is a client error.
    let out = run(execd(&server.url, &["exec", "--env", "NOEQUALS", "--", "true"])).await;
    assert!(out.client_error().contains("NOEQUALS"), "{}", out.stderr);
}

#[tokio::test]
async fn exec_url_from_the_flag_or_the_environment() {
    let server = Server::start(&[]);
    // EXECD_URL alone.
    assert_eq!(run(execd(&server.url, &["exec", "--", "echo", "env"])).await.success(), "env\n");
    // --url alone.
    let mut cmd = execd(&server.url, &["exec", "--url", &server.url, "--", "echo", "flag"]);
    cmd.env_remove("EXECD_URL");
    assert_eq!(run(cmd).await.success(), "flag\n");
    // --url wins over EXECD_URL (which points nowhere here).
    let cmd = execd("ws://127.0.0.1:1", &["exec", "--url", &server.url, "--", "echo", "both"]);
    assert_eq!(run(cmd).await.success(), "both\n");
}

// ---------------------------------------------------------------------------
// exec -t: a real local pseudo-terminal
// ---------------------------------------------------------------------------

/// The master side of a local PTY, read without blocking.
struct PtyMaster {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
    /// Everything read so far (lossy UTF-8).
    seen: String,
}

impl PtyMaster {
    /// Reads what is available; false at the end (EIO once no slave is open).
    async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            let mut ready = self.fd.readable().await.expect("pty readable");
            match ready.try_io(|fd| rustix::io::read(fd.get_ref(), &mut buf[..]).map_err(std::io::Error::from)) {
                Ok(Ok(0)) => return false,
                Ok(Ok(n)) => {
                    self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    return true;
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return false,
                Ok(Err(e)) => panic!("reading the pty master: {e}"),
                Err(_would_block) => continue,
            }
        }
    }

    /// The complete `ROWS COLS` lines (what `stty size` prints) seen so far.
    fn sizes(&self) -> Vec<String> {
        let mut lines: Vec<&str> = self.seen.split('\n').collect();
        lines.pop(); // not terminated yet
        lines
            .into_iter()
            .map(|l| l.trim().to_owned())
            .filter(|l| {
                let mut parts = l.split(' ');
                let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else { return false };
                [a, b].iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            })
            .collect()
    }

    /// Reads until more than `n` size lines were seen; returns them all.
    async fn sizes_after(&mut self, n: usize) -> Vec<String> {
        loop {
            let sizes = self.sizes();
            if sizes.len() > n {
                return sizes;
            }
            assert!(self.read_more().await, "the pty closed; output so far: {:?}", self.seen);
        }
    }

    fn write(&self, bytes: &[u8]) {
        let n = rustix::io::write(self.fd.get_ref(), bytes).expect("write to the pty master");
        assert_eq!(n, bytes.len(), "short write to the pty master");
    }
}

fn winsize(rows: u16, cols: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

#[tokio::test]
async fn exec_tty_sizes_the_remote_pty_follows_resizes_and_restores_the_terminal() {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    use rustix::termios::{tcgetattr, tcsetwinsize, LocalModes};

    let server = Server::start(&[]);
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let slave: OwnedFd =
        rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())
            .expect("open the pty slave");
    tcsetwinsize(&master, winsize(30, 100)).expect("set the initial size");
    let before = tcgetattr(&slave).expect("tcgetattr before");
    assert!(before.local_modes.contains(LocalModes::ICANON | LocalModes::ECHO), "a fresh pty is cooked");

    // `stty size` once, then again after each line typed, until EOF.
    let mut cmd = execd(&server.url, &["exec", "-t", "--", "sh", "-c", "stty size; while read x; do stty size; done"]);
    cmd.stdin(Stdio::from(slave.try_clone().expect("dup")))
        .stdout(Stdio::from(slave.try_clone().expect("dup")))
        .stderr(Stdio::from(slave.try_clone().expect("dup")));
    // SAFETY: only raw syscalls (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // A session of its own with the pty as its controlling terminal,
            // so the kernel sends it SIGWINCH when the size changes.
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn execd exec -t");
    drop(cmd); // closes the parent's copies of the slave given to the child

    rustix::io::ioctl_fionbio(&master, true).expect("nonblocking master");
    // SAFETY: the OwnedFd stays open, and the same descriptor, for the AsyncFd's lifetime.
    let fd = unsafe { tokio::io::unix::AsyncFd::register(master) }.expect("register the pty master");
    let mut pty = PtyMaster { fd, seen: String::new() };

    let sizes = within("the first `stty size`", pty.sizes_after(0)).await;
    assert_eq!(sizes, ["30 100"], "the remote pty starts with the local size; output: {:?}", pty.seen);
    // The local terminal is raw while the command runs (set before the start).
    let during = tcgetattr(&slave).expect("tcgetattr during");
    assert!(
        !during.local_modes.intersects(LocalModes::ICANON | LocalModes::ECHO),
        "the local terminal is in raw mode during `exec -t`: {:?}",
        during.local_modes
    );

    // The kernel sends SIGWINCH to the client, which resizes the remote pty.
    tcsetwinsize(pty.fd.get_ref(), winsize(40, 120)).expect("resize");
    // Each line typed makes the remote print its size again. The resize travels
    // on its own, so a line typed right away may still see the old size: type
    // another after each answer until the new size shows.
    within("`stty size` to show the new size", async {
        loop {
            let n = pty.sizes().len();
            pty.write(b"\r");
            let sizes = pty.sizes_after(n).await;
            match sizes.last().map(String::as_str) {
                Some("40 120") => break,
                Some("30 100") => continue,
                other => panic!("unexpected size {other:?}; output: {:?}", pty.seen),
            }
        }
    })
    .await;

    // Ctrl-D (raw mode passes it through) is EOF for the remote `read`.
    pty.write(b"\x04");
    let status = within("execd exec -t to exit", child.wait()).await.expect("wait");
    assert_eq!(status.code(), Some(0), "exec -t exit status; output: {:?}", pty.seen);

    let after = tcgetattr(&slave).expect("tcgetattr after");
    assert!(after.local_modes.contains(LocalModes::ICANON | LocalModes::ECHO), "cooked again after the exit");
    assert_eq!(after.local_modes, before.local_modes, "local modes restored");
    assert_eq!(after.input_modes, before.input_modes, "input modes restored");
    assert_eq!(after.output_modes, before.output_modes, "output modes restored");
    assert_eq!(after.control_modes, before.control_modes, "control modes restored");

    // With the last slave closed, the master reaches its end.
    drop(slave);
    within("the pty to close", async { while pty.read_more().await {} }).await;
}

// ---------------------------------------------------------------------------
// fs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fs_put_and_get_of_200_mib_round_trip_in_bounded_memory() {
    const SIZE: u64 = 200 << 20;
    const MAX_RSS_KIB: i64 = 64 << 10;
    let server = Server::start(&[]);
    let dir = TempDir::new("cli-fs-big");
    let local = dir.path().join("local.bin");
    let remote = dir.path().join("remote.bin");
    let back = dir.path().join("back.bin");
    let t = Instant::now();
    write_noise(&local, 0xb16f11e, SIZE);
    let generated = t.elapsed();

    let t = Instant::now();
    let (out, put_rss) =
        run_measured(&server.url, &["fs", "put", local.to_str().expect("utf-8"), remote.to_str().expect("utf-8")])
            .await;
    let put_time = t.elapsed();
    assert_eq!(out.code, 0, "fs put: {}", out.stderr);
    assert_eq!(out.stderr, "", "fs put is quiet off a terminal");
    assert_same_file(&local, &remote);

    let t = Instant::now();
    let (out, get_rss) =
        run_measured(&server.url, &["fs", "get", remote.to_str().expect("utf-8"), back.to_str().expect("utf-8")]).await;
    let get_time = t.elapsed();
    assert_eq!(out.code, 0, "fs get: {}", out.stderr);
    assert_eq!(out.stderr, "", "fs get is quiet off a terminal");
    assert_same_file(&local, &back);

    eprintln!(
        "200 MiB: generated in {generated:?}; put {put_time:?} (peak RSS {put_rss} KiB); \
         get {get_time:?} (peak RSS {get_rss} KiB)"
    );
    assert!(put_rss < MAX_RSS_KIB, "fs put peak RSS {put_rss} KiB, expected < {MAX_RSS_KIB} KiB");
    assert!(get_rss < MAX_RSS_KIB, "fs get peak RSS {get_rss} KiB, expected < {MAX_RSS_KIB} KiB");
}

#[tokio::test]
async fn fs_cat_ls_stat_mkdir_rm() {
    let server = Server::start(&[]);
    let tmp = TempDir::new("cli-fs-small");
    let dir = tmp.path();
    let d = tmp.str();
    let fs = |args: &[&str]| {
        let mut all = vec!["fs"];
        all.extend_from_slice(args);
        execd(&server.url, &all)
    };
    std::fs::write(dir.join("b.txt"), "bee\n").expect("write");
    std::fs::write(dir.join("a.txt"), "hello\nworld\n").expect("write");
    std::fs::create_dir(dir.join("c")).expect("mkdir");
    std::fs::write(dir.join("c").join("inner"), "x").expect("write");

    // cat: the exact bytes.
    let out = run(fs(&["cat", &format!("{d}/a.txt")])).await;
    assert_eq!(out.success(), "hello\nworld\n");
    assert_eq!(out.stderr, "");
    let out = run(fs(&["cat", &format!("{d}/c/inner")])).await;
    assert_eq!(out.success(), "x");

    // ls: sorted, directories with a trailing slash.
    let out = run(fs(&["ls", d])).await;
    assert_eq!(out.success(), "a.txt\nb.txt\nc/\n");

    // stat: one `key: value` line each.
    let file = format!("{d}/a.txt");
    let out = run(fs(&["stat", &file])).await;
    let text = out.success();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0], format!("path: {file}"));
    assert_eq!(lines[1], "type: file");
    assert_eq!(lines[2], "size: 12");
    let modified = lines[3].strip_prefix("modified_ms: ").unwrap_or_else(|| panic!("{text}"));
    let modified_ms: u64 = modified.parse().unwrap_or_else(|_| panic!("{text}"));
    let local_ms = std::fs::metadata(&file)
        .expect("meta")
        .modified()
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("epoch")
        .as_millis() as u64;
    assert_eq!(modified_ms, local_ms, "modified_ms is the file's mtime");
    let created = lines[4].strip_prefix("created_ms: ").unwrap_or_else(|| panic!("{text}"));
    created.parse::<u64>().unwrap_or_else(|_| panic!("{text}"));
    let out = run(fs(&["stat", &format!("{d}/c")])).await;
    assert!(out.success().lines().any(|l| l == "type: directory"), "{}", out.stdout());

    // mkdir -p creates the parents; without -p a missing parent is an error.
    let deep = format!("{d}/x/y/z");
    let out = run(fs(&["mkdir", &format!("{d}/p/q")])).await;
    assert!(out.client_error().contains("no such file or directory on the server"), "{}", out.stderr);
    assert_eq!(run(fs(&["mkdir", "-p", &deep])).await.success(), "");
    assert!(dir.join("x/y/z").is_dir());
    let out = run(fs(&["stat", &deep])).await;
    assert!(out.success().lines().any(|l| l == "type: directory"));

    // rm of a file: then stat fails.
    assert_eq!(run(fs(&["rm", &file])).await.success(), "");
    assert!(!dir.join("a.txt").exists());
    let out = run(fs(&["stat", &file])).await;
    assert!(out.client_error().contains("no such file or directory on the server"), "{}", out.stderr);
    // rm of a directory takes its contents.
    assert_eq!(run(fs(&["rm", &format!("{d}/x")])).await.success(), "");
    assert!(!dir.join("x").exists());
    // rm of a missing path: an error, unless -f.
    let missing = format!("{d}/missing");
    let out = run(fs(&["rm", &missing])).await;
    assert!(out.client_error().contains("no such file or directory on the server"), "{}", out.stderr);
    let out = run(fs(&["rm", "-f", &missing])).await;
    assert_eq!(out.success(), "");
    assert_eq!(out.stderr, "");
    assert_eq!(run(fs(&["ls", d])).await.success(), "b.txt\nc/\n");

    // Remote paths must be absolute.
    let out = run(fs(&["cat", "relative/path"])).await;
    assert!(out.client_error().contains("absolute"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// Errors a user can act on
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connection_refused_says_to_start_the_server() {
    for args in [&["exec", "--", "true"][..], &["fs", "ls", "/"], &["ps"]] {
        let out = run(execd("ws://127.0.0.1:1", args)).await;
        let msg = out.client_error();
        assert!(msg.contains("cannot connect") && msg.contains("ws://127.0.0.1:1"), "{args:?}: {msg}");
        assert!(msg.contains("execd serve"), "{args:?}: {msg}");
        assert_eq!(out.stdout, b"", "{args:?}");
    }
}

#[tokio::test]
async fn a_bad_url_is_named() {
    for url in ["http://x", "x:1"] {
        let out = run(execd(url, &["exec", "--", "true"])).await;
        let msg = out.client_error();
        assert!(msg.contains("bad server URL"), "{url:?}: {msg}");
        assert!(msg.contains("ws://HOST:PORT"), "{url:?}: {msg}");
    }
}

#[tokio::test]
async fn a_missing_or_wrong_token_says_how_to_pass_one() {
    let dir = TempDir::new("cli-auth");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, b"cli-s3cret\n").expect("write the token file");
    let token_file = token_file.to_str().expect("utf-8 path");
    let server = Server::start(&["--ws-auth", "capability-token", "--ws-token-file", token_file]);
    for token in [None, Some("wrong")] {
        let mut cmd = execd(&server.url, &["exec", "--", "true"]);
        if let Some(token) = token {
            cmd.args(["--token", token]);
        }
        let out = run(cmd).await;
        let msg = out.client_error();
        assert!(msg.contains("token"), "{token:?}: {msg}");
        assert!(msg.contains("--token") && msg.contains("EXECD_TOKEN"), "{token:?}: {msg}");
    }
    let mut cmd = execd(&server.url, &["exec", "--", "true"]);
    cmd.env("EXECD_TOKEN", "wrong");
    run(cmd).await.client_error();

    // The right token, from the flag or the environment.
    let out = run(execd(&server.url, &["exec", "--token", "cli-s3cret", "--", "echo", "in"])).await;
    assert_eq!(out.success(), "in\n");
    let mut cmd = execd(&server.url, &["fs", "cat", token_file]);
    cmd.env("EXECD_TOKEN", "cli-s3cret");
    assert_eq!(run(cmd).await.success(), "cli-s3cret\n");
}

#[tokio::test]
async fn a_missing_remote_file_is_named() {
    let server = Server::start(&[]);
    let out = run(execd(&server.url, &["fs", "cat", "/nonexistent/x"])).await;
    let msg = out.client_error();
    assert!(msg.contains("/nonexistent/x") && msg.contains("no such file or directory on the server"), "{msg}");
    assert_eq!(out.stdout, b"");
    let out = run(execd(&server.url, &["fs", "put", "/nonexistent/local/file", "/tmp/never"])).await;
    assert!(out.client_error().contains("cannot open /nonexistent/local/file"), "{}", out.stderr);
}

#[tokio::test]
async fn fs_get_of_a_missing_remote_file_leaves_local_files_alone() {
    let server = Server::start(&[]);
    let dir = TempDir::new("cli-get-missing");
    // No local file appears for a remote one that does not exist…
    let fresh = dir.path().join("fresh.bin");
    let out = run(execd(&server.url, &["fs", "get", "/nonexistent/x", fresh.to_str().expect("utf-8")])).await;
    assert!(out.client_error().contains("no such file or directory on the server"), "{}", out.stderr);
    // …and an existing one is not truncated (as `scp` and `cp` leave it).
    let existing = dir.path().join("existing.txt");
    std::fs::write(&existing, "precious\n").expect("write");
    let out = run(execd(&server.url, &["fs", "get", "/nonexistent/x", existing.to_str().expect("utf-8")])).await;
    assert!(out.client_error().contains("no such file or directory on the server"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&existing).expect("read"), "precious\n", "the local file was clobbered");
    assert!(!fresh.exists(), "a failed `fs get` left an empty {}", fresh.display());
}

// ---------------------------------------------------------------------------
// ps
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ps_lists_a_detached_sessions_processes() {
    let server = Server::start(&[]);
    // A fresh session of its own: only the header.
    let out = run(execd(&server.url, &["ps"])).await;
    let text = out.success();
    assert_eq!(text.lines().count(), 1, "{text}");
    let header = text.lines().next().unwrap_or_default();
    for column in ["ID", "PID", "STATE", "EXIT", "COMMAND"] {
        assert!(header.split_whitespace().any(|c| c == column), "{column} in {header:?}");
    }

    let mut c = server.client().await;
    let sid = c.session_id.clone();
    c.start("sleeper", &["sleep", "1000"], json!({})).await.expect("start sleep");
    let list = c.ok("process/list", json!({})).await;
    let pid = list["processes"][0]["pid"].as_u64().expect("pid") as u32;
    assert!(alive(pid));
    // Detach: the session and its process stay on the server.
    c.send_ws(Message::Close(None));
    c.closed().await;

    // `execd ps --session` resumes it; retried while the server has not yet
    // noticed the old connection is gone (it refuses a second attachment).
    let out = within("execd ps --session to resume the detached session", async {
        loop {
            let out = run(execd(&server.url, &["ps", "--session", &sid])).await;
            if out.code == 255 && out.stderr.contains("already attached") {
                retry_pause().await;
                continue;
            }
            return out;
        }
    })
    .await;
    let text = out.success();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one process: {text}");
    assert!(lines[0].starts_with("ID") && lines[0].ends_with("COMMAND"), "{text}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "sleeper", "{text}");
    assert_eq!(row[1], pid.to_string(), "{text}");
    assert_eq!(row[2], "running", "{text}");
    assert_eq!(row[3], "-", "no exit code yet: {text}");
    assert!(lines[1].ends_with("  sleep 1000"), "{text}");
    assert!(alive(pid), "listing does not disturb the process");

    // Clean up: resume the session (detached again by `execd ps`) and terminate.
    let mut c = within("a harness resume", async {
        let mut c = server.connect().await;
        loop {
            match c.resume(&sid).await {
                Ok(_) => return c,
                Err((-32010, _)) => retry_pause().await,
                Err(e) => panic!("resume {sid}: {e:?}"),
            }
        }
    })
    .await;
    assert_eq!(c.ok("process/terminate", json!({"processId": "sleeper"})).await, json!({"running": true}));
    eventually("the sleeper to die", || !alive(pid)).await;
}
