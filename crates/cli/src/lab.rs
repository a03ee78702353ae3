//! A local lab for `vsc demo`, `vsc sandbox` and `vsc bench`: the real server in-process over
//! real TLS on loopback (sandbox mode, so simulated phones are accepted), the first RA Manager
//! enrolled on a simulated phone and signed in, and helpers to register people and enrol their
//! simulated phones through the same RA API and enrolment flow a real deployment uses.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use vsc_proto::routes;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use vsc_authenticator::{ClientForHome as _, Home, Passcode};
use vsc_core::WorkstationState;
use vsc_https::Client;
use vsc_proto::{
    AssignPosition, CardWithCode, CreateOrganisation, CreatePerson, IssueCard, Person,
    RecordIdentityCheck,
};
use vsc_server::ServerConfig;
use vsc_server::clock::SystemClock;
use vsc_server::state::AppState;

/// The passcode of every simulated phone in the lab (printed by the sandbox).
pub const LAB_PASSCODE: &str = "123456";

/// The organisation the lab registers people at.
pub const LAB_ODS: &str = "SBX1";

/// A position to give a lab person.
#[derive(Debug, Clone)]
pub struct LabPosition {
    /// NRBAC role code.
    pub role_code: &'static str,
    /// Role name.
    pub role_name: &'static str,
    /// Activity codes.
    pub activities: &'static [&'static str],
}

/// Clinical practitioner with prescribing activities.
pub const CLINICIAN: LabPosition = LabPosition {
    role_code: "S8000:G8000:R8000",
    role_name: "Clinical Practitioner Access Role",
    activities: &["B0570", "B0068", "B0420"],
};

/// An admin role without prescribing.
pub const ADMIN: LabPosition = LabPosition {
    role_code: "S8001:G8005:R8008",
    role_name: "Admin/Clinical Support Access Role",
    activities: &["B0264"],
};

/// An identity agent's event handler that also puts each number the agent shows on `screen`,
/// where the lab's simulated phones read it (as a person reads the workstation: the server never
/// sends the phone the number), then hands the event on to `next`.
pub fn showing_numbers(
    screen: vsc_authenticator::WorkstationScreen,
    next: Option<vsc_agent::EventHandler>,
) -> vsc_agent::EventHandler {
    Arc::new(move |event: &vsc_agent::AgentEvent| {
        if let vsc_agent::AgentEvent::Number { uid, number, .. } = event {
            screen.show(uid, *number);
        }
        if let Some(next) = &next {
            next(event);
        }
    })
}

/// Points a lab phone at the lab server's current address. A lab started on port 0 gets a new
/// port each run; its simulated phones live in the lab directory and move with it.
pub fn follow_server(home: &Home, url: &url::Url) -> Result<()> {
    if let Some(mut enrolment) = home.enrolment()?
        && enrolment.server != *url
    {
        enrolment.server = url.clone();
        home.save_enrolment(&enrolment)?;
    }
    Ok(())
}

/// The running lab: its server in this process ([`Lab::start`]) or in another one
/// ([`Lab::connect`], for a load generator in its own process).
pub struct Lab {
    /// The server's state (store, CA, configuration) when the server runs in this process.
    state: Option<AppState>,
    /// The server's base URL.
    pub url: url::Url,
    /// The instance's root CA (PEM).
    root_pem: String,
    /// The first RA Manager's simulated phone.
    pub ram_home: Home,
    /// Their RA session token.
    ram_token: String,
    client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// The passcode as the authenticator wants it.
pub fn lab_passcode() -> Result<Passcode> {
    Ok(Passcode::new(LAB_PASSCODE)?)
}

impl Lab {
    /// Starts the server in `dir/server` on `listen`; on first start enrols the first RA Manager
    /// on a simulated phone in `dir/phones/ra-manager` and registers the lab organisation.
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Result<Lab> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut config = ServerConfig::new(dir.join("server"), listen);
        config.sandbox = true;
        configure(&mut config);
        let listener = std::net::TcpListener::bind(listen).with_context(|| {
            format!("cannot listen on {listen}: choose another address with --listen")
        })?;
        let bound = listener.local_addr()?;
        let instance = vsc_server::instance::prepare(config, bound, Arc::new(SystemClock))
            .await
            .context("cannot prepare the lab server")?;
        let state = instance.state.clone();
        let bootstrap = instance.bootstrap.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(vsc_server::serve(instance, listener, async move {
            let _ = rx.await;
        }));
        let url = state.public_url().clone();
        let ram_home = Home::open(dir.join("phones").join("ra-manager"))?;
        follow_server(&ram_home, &url)?;
        if let Some(b) = bootstrap {
            vsc_authenticator::enrol(
                &ram_home,
                &b.activation.url,
                None,
                None,
                &lab_passcode()?,
                true,
            )
            .await
            .context("the lab's RA Manager could not enrol")?;
        }
        let root_pem = state.ca().root_pem();
        let mut lab = Lab::signed_in(url, root_pem, ram_home).await?;
        lab.state = Some(state);
        lab.shutdown = Some(tx);
        lab.server = Some(server);
        lab.ensure_organisation().await?;
        Ok(lab)
    }

    /// Connects to a lab server running in another process (`vsc bench server --data DIR`):
    /// its URL, its root CA, and the lab directory `dir` that holds the RA Manager's simulated
    /// phone.
    pub async fn connect(dir: &Path, url: url::Url, root_pem: String) -> Result<Lab> {
        let phone = dir.join("phones").join("ra-manager");
        if !phone.join("enrolment.json").exists() {
            bail!(
                "{} holds no lab: start `vsc bench server --data {}` first",
                dir.display(),
                dir.display()
            );
        }
        let ram_home = Home::open(&phone)?;
        follow_server(&ram_home, &url)?;
        let lab = Lab::signed_in(url, root_pem, ram_home).await?;
        lab.ensure_organisation().await?;
        Ok(lab)
    }

    /// The RA Manager of the lab signed in (no server handle yet).
    async fn signed_in(url: url::Url, root_pem: String, ram_home: Home) -> Result<Lab> {
        let login = vsc_authenticator::ra_login(&ram_home, &lab_passcode()?)
            .await
            .context("the lab's RA Manager could not sign in")?;
        let client = Client::for_home(&ram_home)?;
        Ok(Lab {
            state: None,
            url,
            root_pem,
            ram_home,
            ram_token: login.token,
            client,
            shutdown: None,
            server: None,
        })
    }

    /// The server's state, when the server runs in this process.
    pub fn local(&self) -> Result<&AppState> {
        self.state
            .as_ref()
            .context("this needs the lab's server in this process (it runs in another one)")
    }

    /// Registers the lab organisation unless it exists.
    async fn ensure_organisation(&self) -> Result<()> {
        let lab = self;
        let orgs: Vec<vsc_proto::Organisation> = lab.get(routes::RA_ORGANISATIONS).await?;
        if !orgs.iter().any(|o| o.ods_code == LAB_ODS) {
            let _: vsc_proto::Organisation = lab
                .post(
                    routes::RA_ORGANISATIONS,
                    &CreateOrganisation {
                        ods_code: LAB_ODS.into(),
                        name: "vsc Sandbox Trust".into(),
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// The root CA (PEM).
    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    pub(crate) async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        Ok(self.client.get_json(path, Some(&self.ram_token)).await?)
    }

    async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R> {
        Ok(self
            .client
            .post_json(path, body, Some(&self.ram_token))
            .await?)
    }

    /// Registers a person with identity check and positions, and issues their card.
    pub async fn register(
        &self,
        given: &str,
        family: &str,
        positions: &[LabPosition],
    ) -> Result<(String, CardWithCode)> {
        let person: Person = self
            .post(
                routes::RA_PEOPLE,
                &CreatePerson {
                    given_name: given.into(),
                    family_name: family.into(),
                    email: None,
                    organisation: LAB_ODS.into(),
                },
            )
            .await?;
        let uid = person.uid;
        let _: Person = self
            .post(
                &routes::fill(routes::RA_PERSON_IDENTITY_CHECKS, &uid),
                &RecordIdentityCheck {
                    evidence: vec!["passport".into(), "proof-of-address".into()],
                    level: 3,
                    organisation: LAB_ODS.into(),
                },
            )
            .await?;
        for p in positions {
            let _: Person = self
                .post(
                    &routes::fill(routes::RA_PERSON_POSITIONS, &uid),
                    &AssignPosition {
                        organisation: LAB_ODS.into(),
                        role_code: p.role_code.into(),
                        role_name: p.role_name.into(),
                        activities: p.activities.iter().map(|a| (*a).to_owned()).collect(),
                    },
                )
                .await?;
        }
        let card: CardWithCode = self
            .post(
                &routes::fill(routes::RA_PERSON_CARDS, &uid),
                &IssueCard {
                    organisation: LAB_ODS.into(),
                },
            )
            .await?;
        Ok((uid, card))
    }

    /// A new activation code for a card that is still waiting for its phone, as
    /// `vsc ra card activation` gets it.
    pub async fn reissue_activation(&self, card_id: &str) -> Result<CardWithCode> {
        self.post(
            &routes::fill(routes::RA_CARD_ACTIVATION, card_id),
            &serde_json::json!({}),
        )
        .await
    }

    /// A one-time registration code for a workstation of the lab organisation named `name`,
    /// from the RA API as `vsc ra workstation code` gets it.
    async fn workstation_code(&self, name: &str) -> Result<String> {
        let code: vsc_proto::workstation::WorkstationCode = self
            .post(
                routes::RA_WORKSTATION_CODES,
                &vsc_proto::workstation::IssueWorkstationCode {
                    organisation: LAB_ODS.into(),
                    name: Some(name.into()),
                },
            )
            .await?;
        Ok(code.code)
    }

    /// Revokes the lab organisation's active workstation named `name`, if any (its agent home
    /// was deleted, so its key is gone).
    async fn revoke_workstation_named(&self, name: &str) -> Result<()> {
        let list: Vec<vsc_proto::workstation::WorkstationInfo> = self
            .get(&format!(
                "{}?organisation={LAB_ODS}",
                routes::RA_WORKSTATIONS
            ))
            .await?;
        for w in list.iter().filter(|w| {
            w.state == WorkstationState::Active.as_str() && w.name.eq_ignore_ascii_case(name)
        }) {
            let _: vsc_proto::workstation::WorkstationInfo = self
                .post(
                    &routes::fill(routes::RA_WORKSTATION_REVOKE, &w.id),
                    &serde_json::json!({}),
                )
                .await?;
        }
        Ok(())
    }

    /// Registers the workstation of the agent in `home` with the lab organisation as `name`,
    /// unless it is registered already (then its registration follows the lab server to its
    /// current address), as `vsc ra workstation code` + `vsc agent enrol` would.
    pub async fn register_agent_home(&self, home: &vsc_agent::AgentHome, name: &str) -> Result<()> {
        if let Some(ws) = vsc_agent::workstation::load(home)? {
            let list: Vec<vsc_proto::workstation::WorkstationInfo> = self
                .get(&format!(
                    "{}?organisation={LAB_ODS}",
                    routes::RA_WORKSTATIONS
                ))
                .await?;
            if list
                .iter()
                .any(|w| w.id == ws.id() && w.state == WorkstationState::Active.as_str())
            {
                vsc_agent::workstation::follow_server(home, &self.url)?;
                return Ok(());
            }
        }
        self.revoke_workstation_named(name).await?;
        let code = self.workstation_code(name).await?;
        vsc_agent::workstation::enrol(
            home,
            &self.url,
            &vsc_agent::ServerTrust::RootPem(self.root_pem()),
            &code,
            name,
        )
        .await
        .context("the lab's workstation could not register")?;
        Ok(())
    }

    /// A workstation of the lab organisation registered as `name` and held in memory (for
    /// in-process agents: the demo, the benchmarks). A workstation of that name registered
    /// before is revoked first.
    pub async fn registered_workstation(
        &self,
        name: &str,
    ) -> Result<Arc<vsc_agent::RegisteredWorkstation>> {
        self.revoke_workstation_named(name).await?;
        let code = self.workstation_code(name).await?;
        let (ws, _key) = vsc_agent::workstation::register(
            &self.url,
            &vsc_agent::ServerTrust::RootPem(self.root_pem()),
            &code,
            name,
        )
        .await
        .context("the lab's workstation could not register")?;
        Ok(Arc::new(ws))
    }

    /// Enrols a simulated phone in `home_dir` with an activation link.
    pub async fn enrol_phone(&self, home_dir: &Path, link: &str) -> Result<Home> {
        let home = Home::open(home_dir)?;
        vsc_authenticator::enrol(&home, link, None, None, &lab_passcode()?, true)
            .await
            .with_context(|| {
                format!(
                    "the simulated phone in {} could not enrol",
                    home_dir.display()
                )
            })?;
        Ok(home)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.server.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("the lab server stopped with an error: {e}"),
                Err(e) => bail!("the lab server task failed: {e}"),
            }
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
