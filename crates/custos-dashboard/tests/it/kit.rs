//! The scenario the dashboard tests share: a real deployment on loopback
//! (log, two witnesses, three custodian services with threshold 2, the
//! delivery service) on a simulated clock, with warrants in different
//! states, and a headless Chromium to look at the page.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use custos_authority::court::extend_embargo;
use custos_authority::submit::SubmittedWarrant;
use custos_clock::SimulatedClock;
use custos_dashboard::api::Status;
use custos_dashboard::{DashboardConfig, DashboardHandle, spawn_dashboard};
use custos_deploy::{CustodianMode, Deployment, DeploymentSpec, Names};
use custos_wire::ConversationId;
use custos_wire::release::ConversationDay;
use custos_wire::statement::{SignedStatement, Statement};

pub const DAY: u64 = 86_400;
/// 2026-03-02 00:00 UTC plus an hour.
pub const START_MS: u64 = (20_514 * DAY + 3_600) * 1000;
pub const DOMAIN: &str = "dash.test";

/// What the test did, to compare with what the page shows.
pub struct Scenario {
    pub _dir: tempfile::TempDir,
    pub clock: SimulatedClock,
    pub d: Deployment,
    /// Released, intercepted, and unsealed by the custodians.
    pub opened: SubmittedWarrant,
    /// Never presented: still sealed past its embargo (overdue).
    pub sealed: SubmittedWarrant,
    /// Its embargo extended by the court (not yet due).
    pub extended: SubmittedWarrant,
}

impl Scenario {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = custos_clock::dangerous::simulated(START_MS);
        let spec = DeploymentSpec::new(DOMAIN, clock.shared()).custodians(
            3,
            2,
            CustodianMode::services(1),
        );
        let d = Deployment::start(&dir.path().join("deployment"), spec)
            .await
            .unwrap();
        let today = u32::try_from(d.now_secs() / DAY).unwrap();
        d.wait_day_keys(today..=today).await.unwrap();

        let conversation = ConversationId([7; 16]);
        let opened = d
            .submit_warrant(&d.sign_warrant(&[conversation], today, today).unwrap())
            .await
            .unwrap();
        d.collect(
            &opened,
            vec![ConversationDay {
                conversation,
                day: today,
            }],
        )
        .await
        .unwrap();
        d.intercept(&opened).await.unwrap();
        let sealed = d
            .submit_warrant(
                &d.sign_warrant(&[ConversationId([8; 16])], today, today)
                    .unwrap(),
            )
            .await
            .unwrap();
        let extended = d
            .submit_warrant(
                &d.sign_warrant(&[ConversationId([9; 16])], today, today)
                    .unwrap(),
            )
            .await
            .unwrap();
        let names = Names::new(DOMAIN);
        let issued = d.now_secs();
        extend_embargo(
            d.log(),
            &mut d.verifier("court").unwrap(),
            &names.court(),
            &d.keys().court,
            hex::decode(&extended.commitment)
                .unwrap()
                .try_into()
                .unwrap(),
            issued + 60 * DAY,
            issued + 10,
        )
        .await
        .unwrap();

        // The embargo (30 days) and the unsealing grace (1 day) pass: the
        // custodians unseal the warrant they learnt from the release
        // requests; nobody can unseal the one never presented.
        clock.advance_days(32);
        let s = Self {
            _dir: dir,
            clock,
            d,
            opened,
            sealed,
            extended,
        };
        let sr = &s;
        s.wait_for("the custodians' unsealing", || async move {
            (sr.count(|st| matches!(st, Statement::WarrantUnsealing(_)))
                .await
                > 0)
            .then_some(())
        })
        .await;
        s
    }

    /// Valid statements in the log matching `f` (read from the log itself).
    pub async fn count(&self, f: impl Fn(&Statement) -> bool) -> u64 {
        let note = self.d.log().checkpoint().await.unwrap();
        let size = custos_tlog::audit::log_signed(self.d.manifest(), &note)
            .unwrap()
            .size();
        let entries = self.d.log().entries(0, size).await.unwrap();
        entries
            .iter()
            .filter_map(|e| SignedStatement::decode(e).ok()?.verify().ok())
            .filter(|s| f(s))
            .count() as u64
    }

    pub async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
        &self,
        what: &str,
        mut f: impl FnMut() -> F,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(t) = f().await {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn config(&self, log_url: &str) -> DashboardConfig {
        let mut c = DashboardConfig::new(log_url, self.d.manifest().clone());
        c.clock = self.clock.shared();
        c.poll_interval = Duration::from_millis(100);
        c.provider_url = Some(self.d.server_url().unwrap().to_owned());
        c
    }

    /// A dashboard that has caught up with the log's latest witnessed
    /// checkpoint (or found it inconsistent).
    pub async fn dashboard(&self, config: DashboardConfig) -> DashboardHandle {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h = spawn_dashboard(listener, config).await.unwrap();
        let size = self.d.wait_witnessed(1).await.unwrap();
        let hr = &h;
        self.wait_for("the dashboard to catch up", || async move {
            let s: Status = hr.shared.status();
            (s.tree_size >= size || s.inconsistency.is_some()).then_some(())
        })
        .await;
        h
    }
}

/// Where screenshots go: `target/dashboard-screenshots/`.
pub fn artefacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
