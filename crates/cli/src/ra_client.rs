//! `vsc ra client`: registering the OpenID Connect clients (relying parties: clinical web
//! applications) that sign people in through vsc, listing and showing them, disabling them and
//! rotating their secrets.
//!
//! RA Managers at the national organisation manage every client; a Service Manager
//! (`service-manager`) manages its own organisation's (a national one, all). A client's secret
//! is printed once, when it is made; the server keeps only its hash.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use vsc_https::Client;
use vsc_proto::oidc::{ClientCreated, ClientInfo, CreateClient, auth_method};
use vsc_proto::routes;

/// How a confidential client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// HTTP Basic authentication with the client id and secret (the default).
    #[value(name = "client_secret_basic")]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the token request's form body.
    #[value(name = "client_secret_post")]
    ClientSecretPost,
    /// A JWT signed with the client's own key (RFC 7523); give its public keys with --jwks or
    /// --jwks-uri.
    #[value(name = "private_key_jwt")]
    PrivateKeyJwt,
}

impl AuthMethod {
    fn wire(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => auth_method::CLIENT_SECRET_BASIC,
            AuthMethod::ClientSecretPost => auth_method::CLIENT_SECRET_POST,
            AuthMethod::PrivateKeyJwt => auth_method::PRIVATE_KEY_JWT,
        }
    }
}

/// The algorithm of the ID tokens a client receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdTokenAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (the default, as CIS2).
    #[value(name = "RS256")]
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    #[value(name = "RS512")]
    Rs512,
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
}

impl IdTokenAlg {
    fn wire(self) -> &'static str {
        match self {
            IdTokenAlg::Rs256 => "RS256",
            IdTokenAlg::Rs512 => "RS512",
            IdTokenAlg::Es256 => "ES256",
        }
    }
}

/// `vsc ra client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client (a web application that signs people in through vsc).
    #[command(
        long_about = "Register an OpenID Connect client: a web application that signs NHS staff in \
through vsc as it would through CIS2 Authentication.\n\n\
A confidential client (the default) gets a client id and a secret; the secret is printed ONCE \
and only its hash is kept, so store it at once (or use --auth private_key_jwt with the \
application's public keys instead of a secret). A public client (--public: a single-page or \
native app that cannot keep a secret) gets no secret and must use PKCE (S256).\n\n\
Redirect URIs are matched exactly; they must be https, or http on a loopback address \
(127.0.0.1, [::1], localhost), where any port is accepted (RFC 8252). No fragments, no user \
names.\n\n\
RA Managers at the national organisation register clients at the national organisation; a \
Service Manager registers them at its own organisation.",
        after_help = "Examples:\n  \
vsc ra client create --name \"Ward Round\" --redirect-uri https://wardround.example.nhs.uk/oidc/callback\n  \
vsc ra client create --name \"Clinic App\" --public --redirect-uri http://127.0.0.1/callback\n  \
vsc ra client create --name \"Results\" --redirect-uri https://results.example/cb \\\n      \
--auth private_key_jwt --jwks results-keys.json --backchannel-logout-uri https://results.example/bcl\n  \
vsc ra client create --name \"Ward Round\" --redirect-uri https://wardround.example/cb --json > client.json"
    )]
    Create {
        /// The name people see when they sign in and on their phone (1 to 100 characters).
        #[arg(long)]
        name: String,
        /// Where the browser returns after sign-in (repeatable; at least one; exact match).
        #[arg(long = "redirect-uri", value_name = "URI", required = true)]
        redirect_uris: Vec<String>,
        /// Where the browser may go after the application signs the person out (repeatable).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client: no secret, PKCE S256 required.
        #[arg(long, conflicts_with_all = ["auth", "jwks", "jwks_uri"])]
        public: bool,
        /// How the client authenticates at the token endpoint (default client_secret_basic).
        #[arg(long, value_enum)]
        auth: Option<AuthMethod>,
        /// A file with the client's public keys as a JWK set (`{"keys": [...]}`, or one JWK), for
        /// private_key_jwt: RSA of 2048 bits or more, or EC P-256.
        #[arg(long, value_name = "FILE", conflicts_with = "jwks_uri")]
        jwks: Option<PathBuf>,
        /// Where the client publishes its JWK set (https), for private_key_jwt.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// The client's OpenID Back-Channel Logout endpoint (https, or http on loopback).
        #[arg(long, value_name = "URI")]
        backchannel_logout_uri: Option<String>,
        /// The algorithm of the client's ID tokens.
        #[arg(long, value_enum, value_name = "ALG")]
        id_token_alg: Option<IdTokenAlg>,
    },
    /// List the clients you manage (never their secrets).
    List,
    /// Show one client (never its secret).
    Show {
        /// Client id (NNNNNNNNNNNN.apps.vsc).
        client_id: String,
    },
    /// Disable a client: no new sign-ins, and its tokens are refused. This cannot be undone.
    Disable {
        /// Client id.
        client_id: String,
    },
    /// Give a confidential client a new secret (printed once); the old one stops working at
    /// once.
    #[command(
        after_help = "Example:\n  vsc ra client rotate-secret 482913650172.apps.vsc\n\n\
Public clients and private_key_jwt clients have no secret to rotate."
    )]
    RotateSecret {
        /// Client id.
        client_id: String,
    },
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

fn when(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A client id placed in a URL path: digits, letters, dots, dashes and underscores only.
fn client_path(template: &str, id: &str) -> Result<String> {
    let t = id.trim();
    if t.is_empty()
        || t.len() > 64
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        || t.starts_with('.')
    {
        bail!("'{id}' is not a client id (like 482913650172.apps.vsc)");
    }
    Ok(routes::fill(template, t))
}

/// Reads `--jwks FILE`: a JWK set, or one JWK (wrapped into a set).
fn read_jwks(path: &PathBuf) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the JWK set {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON (a JWK set was expected)", path.display()))?;
    if value.get("keys").is_some() {
        Ok(value)
    } else if value.get("kty").is_some() {
        Ok(serde_json::json!({ "keys": [value] }))
    } else {
        bail!(
            "{} is neither a JWK set ({{\"keys\": [...]}}) nor a JWK",
            path.display()
        )
    }
}

fn print_info(c: &ClientInfo) {
    println!("{}  {}", c.client_id, c.name);
    println!(
        "  state            {}",
        match &c.disabled_at {
            Some(t) => format!("DISABLED since {}", when(t)),
            None => "active".to_owned(),
        }
    );
    println!(
        "  type             {}",
        if c.public {
            "public (PKCE S256)"
        } else {
            "confidential"
        }
    );
    println!("  authentication   {}", c.auth_method);
    for (i, uri) in c.redirect_uris.iter().enumerate() {
        println!(
            "  {}{uri}",
            if i == 0 {
                "redirect URIs    "
            } else {
                "                 "
            }
        );
    }
    for (i, uri) in c.post_logout_redirect_uris.iter().enumerate() {
        println!(
            "  {}{uri}",
            if i == 0 {
                "after logout     "
            } else {
                "                 "
            }
        );
    }
    if c.has_jwks {
        println!("  keys             registered JWK set");
    }
    if let Some(uri) = &c.jwks_uri {
        println!("  keys             {uri}");
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        println!("  back-channel     {uri}");
    }
    println!("  ID tokens        {}", c.id_token_alg);
    println!(
        "  registered       {} at {} by {}",
        when(&c.created_at),
        c.organisation,
        c.created_by
    );
}

fn print_secret_and_issuer(created: &ClientCreated) {
    match &created.client_secret {
        Some(secret) => {
            println!("  client_secret    {secret}");
            println!("                   shown once: store it now (only its hash is kept)");
        }
        None if created.client.public => {
            println!("  client_secret    none: a public client proves itself with PKCE (S256)");
        }
        None => println!(
            "  client_secret    none: the client signs a JWT with its own key (private_key_jwt)"
        ),
    }
    let issuer = created.issuer.trim_end_matches('/');
    println!("  issuer           {issuer}");
    println!("  discovery        {issuer}/.well-known/openid-configuration");
}

/// Runs one `vsc ra client` command with the RA's session `token`.
pub async fn run(
    command: ClientCommand,
    client: &Client,
    token: &str,
    json: bool,
) -> Result<ExitCode> {
    match command {
        ClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            auth,
            jwks,
            jwks_uri,
            backchannel_logout_uri,
            id_token_alg,
        } => {
            let jwks = jwks.as_ref().map(read_jwks).transpose()?;
            let request = CreateClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                auth_method: auth.map(|a| a.wire().to_owned()),
                jwks,
                jwks_uri,
                backchannel_logout_uri,
                id_token_alg: id_token_alg.map(|a| a.wire().to_owned()),
            };
            let created: ClientCreated = client
                .post_json(routes::RA_CLIENTS, &request, Some(token))
                .await?;
            print(json, &created, |c| {
                println!(
                    "Registered client \"{}\" at {}.",
                    c.client.name, c.client.organisation
                );
                println!("  client_id        {}", c.client.client_id);
                print_secret_and_issuer(c);
                println!("  authentication   {}", c.client.auth_method);
                println!("  ID tokens        {}", c.client.id_token_alg);
                println!(
                    "Next: give the application's administrator the discovery URL and the client \
                     id{}; the application asks for the scopes it needs (openid profile nhsperson \
                     selectedrole …). `vsc ra client show {}` shows this registration again.",
                    if c.client_secret.is_some() {
                        ", and the secret by a secure channel"
                    } else {
                        ""
                    },
                    c.client.client_id
                );
            })?;
        }
        ClientCommand::List => {
            let list: Vec<ClientInfo> = client.get_json(routes::RA_CLIENTS, Some(token)).await?;
            print(json, &list, |list| {
                if list.is_empty() {
                    println!("No OpenID Connect clients are registered (that you manage).");
                }
                for c in list {
                    println!(
                        "{}  {:<8} {:<19} {:<6} {}",
                        c.client_id,
                        if c.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        c.auth_method,
                        c.organisation,
                        c.name
                    );
                }
            })?;
        }
        ClientCommand::Show { client_id } => {
            let c: ClientInfo = client
                .get_json(&client_path(routes::RA_CLIENT, &client_id)?, Some(token))
                .await?;
            print(json, &c, print_info)?;
        }
        ClientCommand::Disable { client_id } => {
            let c: ClientInfo = client
                .post_json(
                    &client_path(routes::RA_CLIENT_DISABLE, &client_id)?,
                    &serde_json::json!({}),
                    Some(token),
                )
                .await?;
            print(json, &c, |c| {
                println!(
                    "Client {} (\"{}\") is disabled: no new sign-ins, and its tokens are refused.",
                    c.client_id, c.name
                );
            })?;
        }
        ClientCommand::RotateSecret { client_id } => {
            let created: ClientCreated = client
                .post_json(
                    &client_path(routes::RA_CLIENT_ROTATE_SECRET, &client_id)?,
                    &serde_json::json!({}),
                    Some(token),
                )
                .await?;
            print(json, &created, |c| {
                println!(
                    "New secret for client {} (\"{}\"); the old secret no longer works.",
                    c.client.client_id, c.client.name
                );
                print_secret_and_issuer(c);
                println!("Next: put the new secret into the application's configuration.");
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
