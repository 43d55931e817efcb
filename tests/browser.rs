//! Two real browser tabs, one sign-in: the refresh race shown and tested in headless Chromium.
//!
//! The already-built `examples/bff` runs with its in-process local Cognito (rotation on, grace
//! 0, 12 s access tokens, the server refreshing within 8 s of expiry); chromedriver drives one
//! headless Chromium. One sign-in through the hosted-UI redirect, then two tabs of the same
//! origin are made to fetch a token at one shared instant (`refreshAt` in `examples/bff.html`),
//! round after round, each time when the server's stored token is due for a refresh but
//! neither page would refresh on its own yet (the page refreshes within 5 s of expiry).
//!
//! - Coordinated (the default): both tabs stay signed in and keep calling the API, the local
//!   Cognito counts exactly one refresh per round, and neither the session cookie nor any
//!   token is readable from JavaScript.
//! - The control, `BFF_UNCOORDINATED_FOR_TESTS=1`: one tab is signed out in the first round,
//!   so the test shows it can see the bug it guards against.
//!
//! It builds nothing: `cargo test --features refresh` builds the example before running tests
//! (with `--test browser` alone, run `cargo build --example bff --features refresh` first). It
//! needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them it
//! fails, unless `SKIP_BROWSER_TEST` says why it may not run: then it says so loudly and
//! passes. On failure, screenshots of the tabs and the logs are in `target/browser-test/`.
#![cfg(feature = "refresh")]

use std::fmt::Debug;
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use serde::Deserialize;
use serde_json::{json, Value};

/// The access tokens' lifetime at the local Cognito.
const ACCESS_TTL_SECS: i64 = 12;
/// The server refreshes when its stored token expires within this (`BFF_REFRESH_MARGIN_SECS`).
const SERVER_MARGIN_SECS: i64 = 8;
/// The page refreshes on its own when its token expires within this (`MARGIN_SECS` in
/// `examples/bff.html`).
const PAGE_MARGIN_SECS: i64 = 5;
/// The shared instant of a round, after the token's `iat`: stale for the server (from
/// `iat + 12 - 8`, one more second for rounding), not yet for the pages (`iat + 12 - 5`).
const ROUND_AT_SECS: i64 = 6;
const ROUNDS: usize = 4;
/// Every local Cognito refresh waits this long, like a real one: the two tabs' requests leave
/// within a few ms of each other, and with the delay the second always finds the first still
/// at Cognito, as in a real race. The same in both runs, so the control proves the overlap.
const REFRESH_DELAY_MS: u64 = 200;

/// One WebDriver command, one HTTP request.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// Starting a process until it answers.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// A page reaching a state.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole scenario.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(150);

/// The browser tests run one at a time: two Chromiums on a small machine skew the tabs' timers.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_share_one_refresh_per_round_and_stay_signed_in() {
    let Some(tools) = Tools::find() else { return };
    let _one = ONE_BROWSER.lock().await;
    Rig::start(&tools, Mode::Coordinated).await.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_coordination_one_tab_is_signed_out_in_the_first_round() {
    let Some(tools) = Tools::find() else { return };
    let _one = ONE_BROWSER.lock().await;
    Rig::start(&tools, Mode::Uncoordinated).await.run().await;
}

/// Both tabs through every round: one refresh per round, nobody signed out, the API answering 200.
async fn coordinated(rig: &Rig, tabs: Tabs) {
    let mut previous_iat = tabs.same_iat(rig).await;
    for round in 1..=ROUNDS {
        let before = rig.counts().await;
        let fetched = tabs.round(rig, round, previous_iat).await;
        for (name, page) in ["tab 1", "tab 2"].iter().zip(&fetched) {
            page.assert_signed_in(name, round);
        }
        let iat = tabs.same_iat(rig).await;
        assert!(
            iat > previous_iat,
            "round {round}: the tabs still show iat {iat}, no newer token"
        );
        let after = rig.counts().await;
        assert_eq!(
            after.since(&before),
            Counts {
                refreshes: 1,
                refresh_ok: 1,
                ..Counts::default()
            },
            "round {round}: exactly one refresh at Cognito for two tabs (before {before:?}, after {after:?})"
        );
        // Both tabs call the API with the new token and are answered 200.
        for (i, page) in fetched.iter().enumerate() {
            let handle = &tabs.handles[i];
            let name = format!("tab {}", i + 1);
            let called = rig
                .wait_page(handle, &name, PAGE_TIMEOUT, |now| {
                    now.assert_signed_in(&name, round);
                    now.ok > page.ok && now.last == "200"
                })
                .await;
            assert_eq!(
                called.failed, 0,
                "round {round}: {name} had refused API calls: {called:?}"
            );
        }
        tabs.assert_nothing_readable_from_javascript(rig).await;
        previous_iat = iat;
        println!("round {round}: one refresh, both tabs on iat {iat}, API answering 200");
    }
    tabs.assert_session_cookie_is_http_only(rig).await;
    let counts = rig.counts().await;
    assert_eq!(
        (counts.sign_ins, counts.refreshes, counts.reused),
        (1, ROUNDS as u64, 0),
        "{counts:?}"
    );
}

/// The control: without the coordination, the first round signs one tab out.
async fn uncoordinated(rig: &Rig, tabs: Tabs) {
    let previous_iat = tabs.same_iat(rig).await;
    let before = rig.counts().await;
    let fetched = tabs.round(rig, 1, previous_iat).await;
    let signed_out: Vec<bool> = fetched.iter().map(Page::shows_signed_out).collect();
    assert_eq!(
        signed_out.iter().filter(|s| **s).count(),
        1,
        "without coordination exactly one of the two tabs is signed out in the first round: {fetched:?}"
    );
    let after = rig.counts().await;
    let since = after.since(&before);
    assert_eq!(
        (since.refreshes, since.refresh_ok, since.reused),
        (2, 1, 1),
        "two refreshes with one refresh token, the second refused as reused: {since:?}"
    );
    println!("control: one tab signed out in round 1 ({since:?})");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Coordinated,
    Uncoordinated,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Coordinated => "coordinated",
            Mode::Uncoordinated => "uncoordinated",
        }
    }
}

/// What the local Cognito served (`GET /local/counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct Counts {
    refreshes: u64,
    refresh_ok: u64,
    reused: u64,
    invalid: u64,
    sign_ins: u64,
    revocations: u64,
}

impl Counts {
    fn since(&self, before: &Counts) -> Counts {
        Counts {
            refreshes: self.refreshes - before.refreshes,
            refresh_ok: self.refresh_ok - before.refresh_ok,
            reused: self.reused - before.reused,
            invalid: self.invalid - before.invalid,
            sign_ins: self.sign_ins - before.sign_ins,
            revocations: self.revocations - before.revocations,
        }
    }
}

/// What a tab shows (`window.pageState()` in `examples/bff.html`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    state: String,
    signed_out_seen: bool,
    iat: String,
    ok: u64,
    failed: u64,
    fetched: u64,
    last: String,
    fired_at: Option<f64>,
}

impl Page {
    fn shows_signed_out(&self) -> bool {
        self.state == "signed out" || self.signed_out_seen
    }

    fn assert_signed_in(&self, name: &str, round: usize) {
        assert!(
            !self.shows_signed_out() && self.state == "signed in",
            "round {round}: {name} is not signed in: {self:?}"
        );
    }

    fn iat(&self) -> i64 {
        self.iat.parse().unwrap_or(0)
    }
}

/// The two tabs of one signed-in browser.
struct Tabs {
    handles: [WindowHandle; 2],
}

impl Tabs {
    /// Signs in once through the hosted UI in tab 1, then opens tab 2 on the same origin.
    async fn open(rig: &Rig) -> Tabs {
        let client = &rig.client;
        let first = wd("window handle", client.window()).await;
        wd("open the page", client.goto(&rig.url("/"))).await;
        rig.wait_page(&first, "tab 1", PAGE_TIMEOUT, |p| p.state == "signed out")
            .await;
        let link = wd("find the sign-in link", client.find(Locator::Id("sign-in"))).await;
        // The link goes to /auth/login, the local Cognito's hosted UI (which approves at once)
        // and back through /auth/callback to the page.
        wd("click sign in", link.click()).await;
        rig.wait_page(&first, "tab 1", PAGE_TIMEOUT, |p| {
            p.state == "signed in" && p.ok >= 1
        })
        .await;
        assert_eq!(rig.counts().await.sign_ins, 1, "one sign-in");
        let second = wd("new tab", client.new_window(true)).await.handle;
        wd("switch to tab 2", client.switch_to_window(second.clone())).await;
        wd("open the page in tab 2", client.goto(&rig.url("/"))).await;
        rig.wait_page(&second, "tab 2", PAGE_TIMEOUT, |p| {
            p.state == "signed in" && p.ok >= 1
        })
        .await;
        let counts = rig.counts().await;
        assert_eq!(
            (counts.sign_ins, counts.refreshes),
            (1, 0),
            "tab 2 uses the same sign-in, and nothing refreshed yet: {counts:?}"
        );
        Tabs {
            handles: [first, second],
        }
    }

    async fn pages(&self, rig: &Rig) -> [Page; 2] {
        [
            rig.page(&self.handles[0]).await,
            rig.page(&self.handles[1]).await,
        ]
    }

    /// The `iat` both tabs show, asserted equal.
    async fn same_iat(&self, rig: &Rig) -> i64 {
        let [a, b] = self.pages(rig).await;
        assert_eq!(a.iat, b.iat, "both tabs hold the same token: {a:?} {b:?}");
        let iat = a.iat();
        assert!(iat > 0, "the tabs show no token: {a:?}");
        iat
    }

    /// Makes both tabs fetch a token at one instant, when the server's stored token (issued
    /// at `iat`) is due for a refresh; answers both tabs once each has fetched or is signed out.
    async fn round(&self, rig: &Rig, round: usize, iat: i64) -> [Page; 2] {
        let before = self.pages(rig).await;
        let now = now_millis();
        let at = ((iat + ROUND_AT_SECS) * 1000).max(now + 1500);
        let page_refreshes_at = (iat + ACCESS_TTL_SECS - PAGE_MARGIN_SECS) * 1000;
        assert!(
            at + 300 < page_refreshes_at,
            "round {round}: too late to schedule before the pages refresh on their own ({at} vs {page_refreshes_at}); the machine is too slow for this timing"
        );
        for handle in &self.handles {
            wd("switch tab", rig.client.switch_to_window(handle.clone())).await;
            wd(
                "refreshAt",
                rig.client
                    .execute("window.refreshAt(arguments[0]);", vec![json!(at)]),
            )
            .await;
        }
        let deadline = Duration::from_millis((at - now).max(0) as u64) + PAGE_TIMEOUT;
        let mut after = Vec::new();
        for (i, handle) in self.handles.iter().enumerate() {
            let fetched_before = before[i].fetched;
            let name = format!("tab {}", i + 1);
            after.push(
                rig.wait_page(handle, &name, deadline, |p| {
                    p.fired_at.is_some_and(|f| f >= at as f64)
                        && (p.fetched > fetched_before || p.shows_signed_out())
                })
                .await,
            );
        }
        let skew = match (after[0].fired_at, after[1].fired_at) {
            (Some(a), Some(b)) => (a - b).abs(),
            _ => unreachable!("both fired"),
        };
        println!(
            "round {round}: both tabs fetched at {at} (+{} ms after iat {iat}), {skew} ms apart",
            at - iat * 1000
        );
        // Well inside the local Cognito's refresh delay: the second request always arrives
        // while the first is still at Cognito.
        assert!(
            skew < (REFRESH_DELAY_MS / 2) as f64,
            "round {round}: the tabs' timers fired {skew} ms apart, not at one instant"
        );
        let [a, b]: [Page; 2] = after
            .try_into()
            .unwrap_or_else(|_| unreachable!("two tabs"));
        [a, b]
    }

    /// `document.cookie` and Web Storage are empty in both tabs: nothing a script could steal.
    async fn assert_nothing_readable_from_javascript(&self, rig: &Rig) {
        for (i, handle) in self.handles.iter().enumerate() {
            wd("switch tab", rig.client.switch_to_window(handle.clone())).await;
            let seen = wd(
                "read cookies and storage",
                rig.client.execute(
                    "return [document.cookie, localStorage.length, sessionStorage.length];",
                    vec![],
                ),
            )
            .await;
            assert_eq!(
                seen,
                json!(["", 0, 0]),
                "tab {}: JavaScript sees [document.cookie, localStorage.length, sessionStorage.length]",
                i + 1
            );
        }
    }

    /// Under `/auth` (the session cookie's path), the browser holds the session cookie, marked
    /// HttpOnly, and `document.cookie` still shows nothing.
    async fn assert_session_cookie_is_http_only(&self, rig: &Rig) {
        let client = &rig.client;
        let third = wd("new tab", client.new_window(true)).await.handle;
        wd("switch to tab 3", client.switch_to_window(third)).await;
        // A 400 JSON answer under /auth that changes nothing (the return path is refused).
        wd(
            "open a page under /auth",
            client.goto(&rig.url("/auth/login?return_to=refused")),
        )
        .await;
        let visible = wd(
            "document.cookie under /auth",
            client.execute("return document.cookie;", vec![]),
        )
        .await;
        let cookies = wd("cookies under /auth", client.get_all_cookies()).await;
        let session = cookies
            .iter()
            .find(|c| c.name() == "cognito_session")
            .unwrap_or_else(|| panic!("no session cookie under /auth: {cookies:?}"));
        assert_eq!(session.http_only(), Some(true), "{session:?}");
        assert_eq!(session.path(), Some("/auth"), "{session:?}");
        assert_eq!(visible, json!(""), "document.cookie under /auth");
        wd("close tab 3", client.close_window()).await;
        wd(
            "back to tab 1",
            client.switch_to_window(self.handles[0].clone()),
        )
        .await;
    }
}

/// Where chromium and chromedriver are, or `None` (the test skips, loudly) when
/// `SKIP_BROWSER_TEST` says why they may be missing.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

impl Tools {
    fn find() -> Option<Tools> {
        if let Some(reason) = std::env::var("SKIP_BROWSER_TEST")
            .ok()
            .filter(|r| !r.trim().is_empty())
        {
            loud(&format!(
                "BROWSER TEST SKIPPED (SKIP_BROWSER_TEST={reason:?}): the two-tab race in Chromium was NOT tested"
            ));
            return None;
        }
        let (chromium, chromedriver) = (on_path("chromium"), on_path("chromedriver"));
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(Tools {
                chromium,
                chromedriver,
            }),
            (chromium, chromedriver) => panic!(
                "the browser test needs Debian's chromium and chromium-driver (found chromium: {chromium:?}, chromedriver: {chromedriver:?}): \
                 `apt-get install -y chromium chromium-driver` as root (.ci/run does it), or set SKIP_BROWSER_TEST=<why> to skip it loudly"
            ),
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Prints past the test harness's capture, so a skip shows in CI's log even when it passes.
fn loud(message: &str) {
    let bar = "!".repeat(100);
    let _ = writeln!(std::io::stderr(), "\n{bar}\n!!! {message}\n{bar}\n");
}

/// A started process, killed with its process group when dropped (also on panic).
struct Process {
    child: Child,
    what: &'static str,
}

impl Process {
    fn spawn(what: &'static str, command: &mut Command, log: &Path) -> Process {
        let out = File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: chromedriver's Chromium processes go with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({command:?}): {e}"));
        Process { child, what }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !killed.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The example server, chromedriver, and a WebDriver session with one headless Chromium.
/// Fields drop in order: chromedriver (and Chromium) first, then the server, then the profile.
struct Rig {
    client: Client,
    _chromedriver: Process,
    _bff: Process,
    _profile: TempDir,
    base: String,
    http: reqwest::Client,
    mode: Mode,
    out: PathBuf,
}

impl Rig {
    async fn start(tools: &Tools, mode: Mode) -> Rig {
        let (example, out) = paths();
        std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("HTTP client");

        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(&example);
        command
            .env_clear()
            .env("LOCAL_COGNITO", "1")
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOCAL_COGNITO_ACCESS_TTL_SECS", ACCESS_TTL_SECS.to_string())
            .env("BFF_REFRESH_MARGIN_SECS", SERVER_MARGIN_SECS.to_string())
            .env(
                "LOCAL_COGNITO_REFRESH_DELAY_MS",
                REFRESH_DELAY_MS.to_string(),
            )
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        if mode == Mode::Uncoordinated {
            command.env("BFF_UNCOORDINATED_FOR_TESTS", "1");
        }
        let bff_log = out.join(format!("{}-bff.log", mode.name()));
        let mut bff = Process::spawn("examples/bff", &mut command, &bff_log);
        wait_answering(&http, &format!("{base}/health"), &mut bff, &bff_log).await;

        let driver_port = free_port();
        let driver_url = format!("http://127.0.0.1:{driver_port}");
        let driver_log = out.join(format!("{}-chromedriver.log", mode.name()));
        let mut chromedriver = Process::spawn(
            "chromedriver",
            Command::new(&tools.chromedriver)
                .arg(format!("--port={driver_port}"))
                .arg("--allowed-ips=127.0.0.1"),
            &driver_log,
        );
        let status = format!("{driver_url}/status");
        wait_answering(&http, &status, &mut chromedriver, &driver_log).await;

        let profile = TempDir(std::env::temp_dir().join(format!(
            "tower-cognito-browser-{}-{}",
            std::process::id(),
            mode.name()
        )));
        let _ = std::fs::remove_dir_all(&profile.0);
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless",
                    // As root, Chromium runs only without its sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-proxy-server",
                    "--window-size=900,800",
                    format!("--user-data-dir={}", profile.0.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let client = wd(
            "a WebDriver session (Chromium starting)",
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&driver_url),
        )
        .await;
        Rig {
            client,
            _chromedriver: chromedriver,
            _bff: bff,
            _profile: profile,
            base,
            http,
            mode,
            out,
        }
    }

    /// Signs in, opens the two tabs and runs the mode's scenario, with a time limit; on
    /// failure, screenshots every tab before the panic goes on. Ends the browser session.
    async fn run(self) {
        let started = Instant::now();
        let scenario = async {
            let tabs = Tabs::open(&self).await;
            match self.mode {
                Mode::Coordinated => coordinated(&self, tabs).await,
                Mode::Uncoordinated => uncoordinated(&self, tabs).await,
            }
        };
        let outcome = AssertUnwindSafe(async {
            if tokio::time::timeout(SCENARIO_TIMEOUT, scenario)
                .await
                .is_err()
            {
                panic!("the scenario took longer than {SCENARIO_TIMEOUT:?}");
            }
        })
        .catch_unwind()
        .await;
        if let Err(panic) = outcome {
            self.screenshots().await;
            let log = |what: &str| self.out.join(format!("{}-{what}.log", self.mode.name()));
            eprintln!(
                "logs: {} and {}",
                log("bff").display(),
                log("chromedriver").display()
            );
            std::panic::resume_unwind(panic);
        }
        println!(
            "{} scenario passed in {:.1} s",
            self.mode.name(),
            started.elapsed().as_secs_f64()
        );
        let _ = tokio::time::timeout(COMMAND_TIMEOUT, self.client.clone().close()).await;
    }

    async fn screenshots(&self) {
        let Ok(Ok(handles)) = tokio::time::timeout(COMMAND_TIMEOUT, self.client.windows()).await
        else {
            eprintln!("no screenshots: chromedriver does not answer");
            return;
        };
        for (i, handle) in handles.into_iter().enumerate() {
            let shot = async {
                self.client.switch_to_window(handle).await?;
                self.client.screenshot().await
            };
            match tokio::time::timeout(COMMAND_TIMEOUT, shot).await {
                Ok(Ok(png)) => {
                    let path = self
                        .out
                        .join(format!("{}-tab{}.png", self.mode.name(), i + 1));
                    match std::fs::write(&path, png) {
                        Ok(()) => eprintln!("screenshot of tab {}: {}", i + 1, path.display()),
                        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
                    }
                }
                Ok(Err(e)) => eprintln!("no screenshot of tab {}: {e}", i + 1),
                Err(_) => eprintln!("no screenshot of tab {}: timed out", i + 1),
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn counts(&self) -> Counts {
        let url = self.url("/local/counts");
        let text = wd("GET /local/counts", async {
            self.http
                .get(&url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        })
        .await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("/local/counts: {e}: {text}"))
    }

    /// What the tab shows now.
    async fn page(&self, handle: &WindowHandle) -> Page {
        match self.try_page(handle).await {
            Ok(page) => page,
            Err(e) => panic!("cannot read the page's state: {e}"),
        }
    }

    async fn try_page(&self, handle: &WindowHandle) -> Result<Page, String> {
        let read = async {
            self.client.switch_to_window(handle.clone()).await?;
            self.client
                .execute(
                    "return typeof window.pageState === 'function' ? window.pageState() : null;",
                    vec![],
                )
                .await
        };
        let value = tokio::time::timeout(COMMAND_TIMEOUT, read)
            .await
            .map_err(|_| "chromedriver did not answer".to_owned())?
            .map_err(|e| e.to_string())?;
        serde_json::from_value(value.clone()).map_err(|e| format!("{e}: {value}"))
    }

    /// Polls the tab until `done` holds (assertions inside `done` fail at once), for at most
    /// `timeout`; a page still loading is polled again.
    async fn wait_page(
        &self,
        handle: &WindowHandle,
        name: &str,
        timeout: Duration,
        mut done: impl FnMut(&Page) -> bool,
    ) -> Page {
        let until = Instant::now() + timeout;
        let mut last = Err("not read yet".to_owned());
        loop {
            if let Ok(page) = &last {
                if done(page) {
                    return page.clone();
                }
            }
            if Instant::now() >= until {
                panic!(
                    "{name} did not reach the expected state within {timeout:?}; it shows {last:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = self.try_page(handle).await;
        }
    }
}

/// The example binary beside this test's (`target/debug/examples/bff`), checked to be newer
/// than every workspace source it was built from; and the output folder `target/browser-test`.
fn paths() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/browser-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let example = profile_dir.join("examples").join("bff");
    let build = "cargo build --example bff --features refresh";
    let built = std::fs::metadata(&example)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build it with `{build}` (plain `cargo test --features refresh` builds it too)",
                example.display()
            )
        });
    // Cargo's dep-info lists the files the binary was built from. A source changed before this
    // test was built means the example was not rebuilt with it (`--test browser` alone): fail.
    // One changed since (someone editing while tests run) only earns a warning.
    let dep_info =
        std::fs::read_to_string(profile_dir.join("examples").join("bff.d")).unwrap_or_default();
    let test_built = std::fs::metadata(&exe).and_then(|m| m.modified()).ok();
    let root = env!("CARGO_MANIFEST_DIR");
    for source in dep_info
        .split_once(": ")
        .map_or("", |(_, deps)| deps)
        .split_whitespace()
        .filter(|s| s.starts_with(root))
    {
        let Ok(changed) = std::fs::metadata(source).and_then(|m| m.modified()) else {
            continue;
        };
        if changed <= built {
            continue;
        }
        let stale = format!("{} is older than {source}", example.display());
        if test_built.is_some_and(|test_built| changed < test_built) {
            panic!("{stale}: rebuild it with `{build}`");
        }
        loud(&format!("{stale} (changed while the tests ran?): this run tests the build from before; `{build}` to test the change"));
        break;
    }
    let out = profile_dir
        .parent()
        .unwrap_or(profile_dir)
        .join("browser-test");
    (example, out)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn now_millis() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("a sane clock")
}

/// One step with a time limit: its error or a timeout fails the test, naming the step.
async fn wd<T, E: Debug>(what: &str, step: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(COMMAND_TIMEOUT, step).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{what}: {e:?}"),
        Err(_) => panic!("{what}: no answer within {COMMAND_TIMEOUT:?}"),
    }
}

/// Waits until `url` answers 200, failing at once when the process exits first.
async fn wait_answering(http: &reqwest::Client, url: &str, process: &mut Process, log: &Path) {
    let until = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = process.exited() {
            panic!(
                "{} exited with {status}; its log: {}",
                process.what,
                log.display()
            );
        }
        if http.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{} does not answer {url} within {START_TIMEOUT:?}; its log: {}",
            process.what,
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
