//! The dashboard in a real browser (Debian's Chromium, headless, driven over
//! the DevTools protocol by `chromiumoxide`) against a real deployment:
//! the figures on the page match what the test did and are verified in the
//! page, the overdue unsealing is highlighted, a log that serves other
//! entries than it committed to shows the red warning, and a dashboard
//! server altered to misreport one figure is caught by its own page.
//! Screenshots go to `target/dashboard-screenshots/`.
//!
//! Without `/usr/bin/chromium` the browser part is skipped with a message
//! on stderr (the API part still runs); with `CUSTOS_REQUIRE_BROWSER=1`
//! (set by `.ci/run`) a missing browser fails the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use custos_deploy::proxy::spawn_proxy;
use custos_wire::statement::Statement;
use futures_util::StreamExt as _;

use crate::kit::{Scenario, artefacts};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Lists the coloured texts of the page whose contrast with their
/// background is below 4.5:1.
const CONTRAST: &str = r#"(() => {
  const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bg = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const e of document.querySelectorAll('.fig, .fig small, .banner, tr.overdue td, tr.overdue th, .state, .late, a, h1, h2, #verdict, .note, dd, th, td')) {
    if (!e.textContent.trim()) continue;
    const a = lum(rgb(getComputedStyle(e).color)), b = lum(bg(e));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${e.tagName}.${e.className}: ${ratio.toFixed(2)}`);
  }
  return low;
})()"#;

/// A headless Chromium with a fresh profile, or `None` (and a message) if
/// the distribution's browser is not installed.
pub async fn chromium(profile: &Path) -> Option<(Browser, tokio::task::JoinHandle<()>)> {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CUSTOS_REQUIRE_BROWSER").is_none(),
            "CUSTOS_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED: the browser checks of the dashboard need {CHROMIUM} \
             (apt-get install chromium); only the API checks ran"
        );
        return None;
    }
    let config = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .no_sandbox()
        .user_data_dir(profile)
        .window_size(1280, 1000)
        .viewport(None)
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let task = tokio::spawn(async move { while handler.next().await.is_some() {} });
    Some((browser, task))
}

/// Opens `url` and waits until the page has verified and rendered.
pub async fn open(browser: &Browser, url: &str) -> Page {
    let page = browser.new_page(url).await.unwrap();
    wait_ready(&page).await;
    page
}

async fn wait_ready(page: &Page) {
    let start = Instant::now();
    loop {
        let ready: String = page
            .evaluate("document.body.dataset.ready || ''")
            .await
            .unwrap()
            .into_value()
            .unwrap();
        if ready == "1" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the page never finished"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Every figure on the page: id -> (value shown, verified mark).
pub async fn figures(page: &Page) -> BTreeMap<String, (String, String)> {
    page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]'))\
         .map(e => [e.dataset.figure, [e.firstChild.textContent.trim(), e.dataset.verified]]))",
    )
    .await
    .unwrap()
    .into_value()
    .unwrap()
}

async fn js<T: serde::de::DeserializeOwned>(page: &Page, expr: &str) -> T {
    page.evaluate(expr).await.unwrap().into_value().unwrap()
}

async fn shot(page: &Page, name: &str) {
    page.save_screenshot(
        ScreenshotParams::builder().full_page(true).build(),
        artefacts().join(name),
    )
    .await
    .unwrap();
}

fn verified(f: &BTreeMap<String, (String, String)>, id: &str, value: u64) {
    let (shown, mark) = f
        .get(id)
        .unwrap_or_else(|| panic!("figure {id} not on the page"));
    assert_eq!(shown, &value.to_string(), "figure {id}");
    assert_eq!(mark, "yes", "figure {id} is not marked verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_shows_verifies_and_catches_lies() {
    let s = Scenario::start().await;
    let releases = s.count(|st| matches!(st, Statement::KeyRelease(_))).await;
    let erasures = s
        .count(|st| matches!(st, Statement::DayKeyErasure(_)))
        .await;
    assert!(releases >= 2, "the custodians released shares");

    // The API first (no browser needed).
    let honest = s.dashboard(s.config(s.d.log_url())).await;
    let status = honest.shared.status();
    assert_eq!(status.inconsistency, None);
    assert_eq!(status.bad_entry_count, 0);
    assert_eq!(status.witnesses.len(), 2);
    for w in &status.witnesses {
        assert!(w.in_latest, "{w:?}");
        let t = w.last_cosigned.expect("a cosignature time");
        assert!(
            t >= crate::kit::START_MS / 1000,
            "{w:?} cosigned on the deployment's clock"
        );
    }
    let f = honest.shared.figures();
    assert_eq!(f.totals.warrants, 3);
    assert_eq!(f.totals.unsealings, 1);
    assert_eq!(f.totals.embargo_extensions, 1);
    assert_eq!(f.totals.interceptions, 1);
    assert_eq!(f.totals.releases, releases);
    let overdue: Vec<&str> = f
        .flags
        .overdue_unsealings
        .iter()
        .map(|o| o.warrant.as_str())
        .collect();
    assert_eq!(overdue, [s.sealed.commitment.as_str()]);

    // A dashboard that misreports one figure, and one that reads the log
    // through a proxy serving one entry's bytes altered.
    let mut lying = s.config(s.d.log_url());
    lying.misreport = Some(|f| f.totals.warrants += 1);
    let lying = s.dashboard(lying).await;
    assert_eq!(lying.shared.figures().totals.warrants, 4);
    let proxy = spawn_proxy(s.d.log_url()).await.unwrap();
    proxy
        .faults
        .tamper(Some(hex::decode(&s.sealed.entry).unwrap()));
    let forked = s.dashboard(s.config(&proxy.url)).await;
    let bad = forked.shared.status();
    assert!(
        bad.inconsistency
            .as_deref()
            .is_some_and(|m| m.contains("do not hash")),
        "{bad:?}"
    );

    let profile = tempfile::tempdir().unwrap();
    let Some((mut browser, task)) = chromium(profile.path()).await else {
        return;
    };

    // The honest dashboard: every lawful-access figure is verified in the
    // page and matches what the test did.
    let page = open(&browser, &honest.url()).await;
    let load_ms: u64 = js::<String>(&page, "document.body.dataset.loadMs")
        .await
        .parse()
        .unwrap();
    eprintln!("page verified and rendered in {load_ms} ms");
    let f = figures(&page).await;
    verified(&f, "totals.warrants", 3);
    verified(&f, "totals.targets", 3);
    verified(&f, "totals.days", 3);
    verified(&f, "totals.unsealings", 1);
    verified(&f, "totals.embargo_extensions", 1);
    verified(&f, "flags.overdue_unsealings", 1);
    verified(&f, "totals.interceptions", 1);
    verified(&f, "totals.releases", releases);
    assert_eq!(
        f.get("totals.day_key_erasures").map(|v| v.1.as_str()),
        Some("yes"),
        "erasures ({erasures} when the test counted) are verified"
    );
    assert_eq!(f.get("tree_size").map(|v| v.1.as_str()), Some("yes"));
    assert!(
        f.values().all(|(_, mark)| mark != "no"),
        "a figure is marked wrong: {f:?}"
    );
    assert!(
        f.get("moderation.reports_received")
            .is_some_and(|(v, m)| v == "0" && m == "unchecked"),
        "the provider's moderation figures are shown as its word"
    );
    let banners: u64 = js(&page, "document.querySelectorAll('[role=alert]').length").await;
    assert_eq!(banners, 0, "no red banner on an honest dashboard");
    // The overdue unsealing is highlighted, the others are not.
    let state = |c: &str| {
        format!(
            "(() => {{ const e = document.querySelector('[data-warrant=\"{c}\"].state'); \
             return [e.dataset.state, e.closest('tr').classList.contains('overdue')]; }})()"
        )
    };
    let (st, hl): (String, bool) = js(&page, &state(&s.sealed.commitment)).await;
    assert_eq!((st.as_str(), hl), ("overdue", true));
    let (st, hl): (String, bool) = js(&page, &state(&s.opened.commitment)).await;
    assert_eq!((st.as_str(), hl), ("unsealed", false));
    let (st, hl): (String, bool) = js(&page, &state(&s.extended.commitment)).await;
    assert_eq!((st.as_str(), hl), ("sealed", false));
    let chart: u64 = js(
        &page,
        "document.querySelectorAll('figure svg rect.bar').length",
    )
    .await;
    assert!(chart >= 2, "the monthly chart has bars");
    // The chart by one court (the selector's first court).
    let court: (String, u64) = js(
        &page,
        "(() => { const s = document.getElementById('chart-filter'); s.selectedIndex = 1; \
         s.dispatchEvent(new Event('change')); \
         return [s.options[1].text, document.querySelectorAll('figure svg rect.bar').length]; })()",
    )
    .await;
    assert_eq!(
        court.0,
        format!(
            "court {}",
            custos_deploy::Names::new(crate::kit::DOMAIN).court()
        )
    );
    assert_eq!(court.1, chart, "all three warrants are of that court");
    shot(&page, "dashboard-honest.png").await;

    // Contrast (WCAG AA, 4.5:1) of every text the page colours: figures,
    // marks, banners, highlighted rows, states, links, headings.
    let low: Vec<String> = js(&page, CONTRAST).await;
    assert!(low.is_empty(), "text below 4.5:1 contrast: {low:?}");

    // The browser remembers the checkpoint it verified; a later visit must
    // be consistent with it (a proof checked in the page), whoever serves it.
    let memory: String = js(&page, "document.getElementById('remembered').innerText").await;
    assert!(memory.contains("remembered"), "{memory}");
    let entries = s.d.log().entries(0, 5).await.unwrap();
    let mut tree = custos_tlog::Tree::new();
    for e in &entries {
        tree.append_entry(e).unwrap();
    }
    let root5 = base64::Engine::encode(&base64::prelude::BASE64_STANDARD, tree.root(5).unwrap().0);
    let remember = |size: u64, root: &str| {
        format!(
            "(() => {{ const k = Object.keys(localStorage).find(k => k.startsWith('custos-dashboard/v1/')); \
             localStorage.setItem(k, JSON.stringify({{size: {size}, root: '{root}'}})); return k; }})()"
        )
    };
    let _: String = js(&page, &remember(5, &root5)).await;
    page.reload().await.unwrap();
    wait_ready(&page).await;
    let memory: String = js(&page, "document.getElementById('remembered').innerText").await;
    assert!(
        memory.contains("consistent with the checkpoint of size 5"),
        "{memory}"
    );
    assert!(!js::<bool>(&page, "!!document.getElementById('fork')").await);
    let forged = base64::Engine::encode(&base64::prelude::BASE64_STANDARD, [0u8; 32]);
    let _: String = js(&page, &remember(5, &forged)).await;
    page.reload().await.unwrap();
    wait_ready(&page).await;
    let fork: String = js(&page, "document.getElementById('fork').innerText").await;
    assert!(fork.contains("split view"), "{fork}");
    shot(&page, "dashboard-split-view.png").await;
    // Back to the honest history for the rest of the test.
    let _: String = js(&page, &remember(5, &root5)).await;

    // Keyboard: the first Tab reaches the skip link; Enter on a warrant's
    // "details" link opens its detail view.
    page.evaluate("document.activeElement.blur()")
        .await
        .unwrap();
    page.find_element("h1")
        .await
        .unwrap()
        .press_key("Tab")
        .await
        .unwrap();
    let first: String = js(&page, "document.activeElement.className").await;
    assert_eq!(first, "skip", "the first Tab reaches the skip link");
    page.find_element(&format!("a[href='#warrant-{}']", s.opened.commitment))
        .await
        .unwrap()
        .focus()
        .await
        .unwrap()
        .press_key("Enter")
        .await
        .unwrap();
    let start = Instant::now();
    while !js::<bool>(&page, "!!document.getElementById('detail')").await {
        assert!(start.elapsed() < Duration::from_secs(10), "no detail view");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let detail: String = js(&page, "document.getElementById('detail').innerText").await;
    assert!(detail.contains(&s.opened.commitment), "{detail}");
    assert!(detail.contains("Unsealed"), "{detail}");
    assert!(detail.contains("Key releases"), "{detail}");
    // The unsealed warrant itself, checked in the page (court's signature).
    assert!(
        detail.contains("investigation of a serious crime (test order)"),
        "{detail}"
    );
    assert!(
        detail.contains("court's signature verified in this browser"),
        "{detail}"
    );
    let focused: String = js(&page, "document.activeElement.id").await;
    assert_eq!(focused, "detail", "the detail view takes the focus");
    shot(&page, "dashboard-detail.png").await;

    // Phone width: nothing overflows the screen.
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await
        .unwrap();
    page.goto(honest.url()).await.unwrap();
    wait_ready(&page).await;
    let overflow: bool = js(
        &page,
        "document.documentElement.scrollWidth > window.innerWidth + 1",
    )
    .await;
    assert!(!overflow, "the page is wider than a phone");
    shot(&page, "dashboard-phone.png").await;

    // The lying server is caught by its own page.
    let page = open(&browser, &lying.url()).await;
    let f = figures(&page).await;
    assert_eq!(
        f.get("totals.warrants"),
        Some(&("4".to_owned(), "no".to_owned()))
    );
    let caught: String = js(&page, "document.getElementById('misreport').innerText").await;
    assert!(caught.contains("totals.warrants"), "{caught}");
    shot(&page, "dashboard-misreport.png").await;
    let low: Vec<String> = js(&page, CONTRAST).await;
    assert!(low.is_empty(), "text below 4.5:1 contrast: {low:?}");

    // The inconsistent log shows the red warning.
    let page = open(&browser, &forked.url()).await;
    let (text, colour): (String, String) = js(
        &page,
        "(() => { const e = document.getElementById('inconsistency'); \
         return [e.innerText, getComputedStyle(e).color]; })()",
    )
    .await;
    assert!(text.contains("inconsistent"), "{text}");
    assert_eq!(colour, "rgb(153, 27, 27)", "the warning is red");
    shot(&page, "dashboard-inconsistent.png").await;
    let low: Vec<String> = js(&page, CONTRAST).await;
    assert!(low.is_empty(), "text below 4.5:1 contrast: {low:?}");

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    task.abort();
    s.d.shutdown().await.unwrap();
}
