//! A pooled host's view of a separate control plane, over its internal HTTP
//! API (`control_api::internal_router`): the edge's `Authenticator` and
//! `ModuleSigner`, registration and heartbeats.
//!
//! Owns: [`ControlPlaneClient`] (the join secret, this host's id, mapping
//! the control plane's error shape to the edge's refusals) and
//! [`heartbeats`]. Does not own: any rule (the control plane decides on
//! every call; the user's credential is forwarded, never trusted here).

use std::net::IpAddr;
use std::time::Duration;

use control_api::{
    ClaimRequest, GrantJson, PublishedRequest, RegisterHostRequest, RegisteredJson, RenameRequest,
    SignedJson, CLIENT_IP_HEADER, CREDENTIAL_HEADER, INTERNAL_PREFIX,
};
use orrery_api::access::Scope;
use orrery_edge::access::{
    Authenticator, BoxFuture, Grant, Handle, ModuleSigner, OwnerEvent, Refusal,
};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use spacetimedb_lib::Identity;

/// How long one call to the control plane may take (a publish validates
/// and uploads the module, so this is generous).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Time between heartbeats; leases last `control_plane::LEASE_MS`.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// The control plane at `base`, as host `host_id` calls it.
#[derive(Clone)]
pub(crate) struct ControlPlaneClient {
    http: reqwest::Client,
    base: String,
    join_secret: String,
    pub(crate) host_id: String,
}

/// What a grant carries to the later calls of its request.
struct Carried {
    credential: String,
    client: Option<IpAddr>,
}

fn carried(grant: &Grant) -> Result<&Carried, Refusal> {
    grant
        .handle
        .get::<Carried>()
        .ok_or_else(|| Refusal::Unavailable("a grant this host did not make".into()))
}

impl ControlPlaneClient {
    pub(crate) fn new(
        base: &str,
        join_secret: String,
        host_id: String,
    ) -> anyhow::Result<ControlPlaneClient> {
        let http = reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?;
        Ok(ControlPlaneClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            join_secret,
            host_id,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{INTERNAL_PREFIX}{path}", self.base))
            .bearer_auth(&self.join_secret)
    }

    fn on_behalf(
        &self,
        method: reqwest::Method,
        path: &str,
        carried: &Carried,
    ) -> reqwest::RequestBuilder {
        let request = self
            .request(method, path)
            .header(CREDENTIAL_HEADER, &carried.credential);
        match carried.client {
            Some(ip) => request.header(CLIENT_IP_HEADER, ip.to_string()),
            None => request,
        }
    }

    /// Sends `request`; a success's JSON body (or nothing for 204), or the
    /// control plane's refusal with its message.
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<T>, Refusal> {
        let response = request.send().await.map_err(|e| {
            Refusal::Unavailable(format!(
                "the control plane at {} did not answer: {e}",
                self.base
            ))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = response.bytes().await.map_err(|e| {
            Refusal::Unavailable(format!("the control plane's answer was cut: {e}"))
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map(Some).map_err(|e| {
                Refusal::Unavailable(format!("the control plane answered unreadable JSON: {e}"))
            });
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(match status.as_u16() {
            400 => Refusal::Invalid(message),
            401 => Refusal::Unauthorized(message),
            403 | 404 => Refusal::Forbidden(message),
            409 => Refusal::Conflict(message),
            _ => Refusal::Unavailable(format!("the control plane failed: {message}")),
        })
    }

    /// Registers this host as reachable at `address`.
    pub(crate) async fn register(&self, address: &str) -> Result<RegisteredJson, Refusal> {
        let request = self
            .request(reqwest::Method::PUT, &format!("/hosts/{}", self.host_id))
            .json(&RegisterHostRequest {
                address: address.to_owned(),
            });
        self.send(request)
            .await?
            .ok_or_else(|| Refusal::Unavailable("an empty registration answer".into()))
    }

    pub(crate) async fn heartbeat(&self) -> Result<RegisteredJson, Refusal> {
        let path = format!("/hosts/{}/heartbeat", self.host_id);
        self.send(self.request(reqwest::Method::POST, &path))
            .await?
            .ok_or_else(|| Refusal::Unavailable("an empty heartbeat answer".into()))
    }

    async fn grant(&self, credential: &str, client: Option<IpAddr>) -> Result<Grant, Refusal> {
        let carried = Carried {
            credential: credential.to_owned(),
            client,
        };
        let request = self.on_behalf(reqwest::Method::POST, "/authenticate", &carried);
        let grant: GrantJson = self
            .send(request)
            .await?
            .ok_or_else(|| Refusal::Unavailable("an empty grant".into()))?;
        let bad = |what: &str| Refusal::Unavailable(format!("the control plane sent {what}"));
        Ok(Grant {
            identity: Identity::from_hex(&grant.identity).map_err(|_| bad("a bad identity"))?,
            account: grant.account,
            issuer: grant.issuer,
            scope: Scope::parse(&grant.scope).ok_or_else(|| bad("an unknown scope"))?,
            databases: grant.databases,
            credential: grant.credential,
            handle: Handle::new(carried),
        })
    }
}

impl Authenticator for ControlPlaneClient {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
        client: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>> {
        Box::pin(self.grant(credential, client))
    }

    fn claim_database<'a>(
        &'a self,
        grant: &'a Grant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<orrery_api::DatabaseSettings, Refusal>> {
        Box::pin(async move {
            let request = self
                .on_behalf(
                    reqwest::Method::POST,
                    &format!("/databases/{name}/claim"),
                    carried(grant)?,
                )
                .json(&ClaimRequest {
                    host: self.host_id.clone(),
                });
            // A control plane from before durability modes answers 204.
            let claimed: Option<control_api::ClaimedJson> = self.send(request).await?;
            let claimed = claimed.unwrap_or_default();
            Ok(orrery_api::DatabaseSettings {
                durability: claimed
                    .durability
                    .and_then(|mode| mode.parse::<orrery_api::Durability>().ok()),
                retention_days: claimed.retention_days,
            })
        })
    }

    fn rename_database<'a>(
        &'a self,
        grant: &'a Grant,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let request = self
                .on_behalf(
                    reqwest::Method::POST,
                    &format!("/databases/{from}/rename"),
                    carried(grant)?,
                )
                .json(&RenameRequest { to: to.to_owned() });
            self.send::<serde_json::Value>(request).await.map(|_| ())
        })
    }

    fn record<'a>(&'a self, grant: &'a Grant, event: OwnerEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(carried) = carried(grant) else { return };
            let (what, request) = match event {
                OwnerEvent::Published {
                    database, module, ..
                } => {
                    let request = self
                        .on_behalf(
                            reqwest::Method::POST,
                            &format!("/databases/{database}/published"),
                            carried,
                        )
                        .json(&PublishedRequest {
                            module_sha256: hex::encode(Sha256::digest(&module)),
                        });
                    (format!("the publish of {database}"), request)
                }
                OwnerEvent::Deleted { database } => {
                    let request = self.on_behalf(
                        reqwest::Method::DELETE,
                        &format!("/databases/{database}"),
                        carried,
                    );
                    (format!("the deletion of {database}"), request)
                }
            };
            if let Err(e) = self.send::<serde_json::Value>(request).await {
                tracing::error!(error = ?e, "the control plane did not record {what}");
            }
        })
    }
}

impl ModuleSigner for ControlPlaneClient {
    fn sign<'a>(
        &'a self,
        grant: Option<&'a Grant>,
        _publisher: Identity,
        database: &'a str,
        wasm: axum::body::Bytes,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            let Some(grant) = grant else {
                return Err(Refusal::Unauthorized(
                    "publishing needs an account credential".into(),
                ));
            };
            let request = self
                .on_behalf(
                    reqwest::Method::POST,
                    &format!("/databases/{database}/modules"),
                    carried(grant)?,
                )
                .header("content-type", "application/wasm")
                .body(wasm);
            let signed: Option<SignedJson> = self.send(request).await?;
            if let Some(signed) = signed {
                tracing::info!(database, module_sha256 = %signed.module_sha256, version = signed.version, "module signed by the control plane");
            }
            Ok(())
        })
    }
}

/// Sends a heartbeat every [`HEARTBEAT_EVERY`] until the process stops;
/// failures are logged (and the next beat tries again).
pub(crate) async fn heartbeats(client: ControlPlaneClient) {
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticks.tick().await;
        match client.heartbeat().await {
            Ok(_) if failing => {
                tracing::info!("the control plane answers heartbeats again");
                failing = false;
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = ?e, "heartbeat to the control plane failed; retrying");
                }
                failing = true;
            }
        }
    }
}
