//! Checking a sign-in request before it is shown or approved, and what the phone shows for it;
//! shared by `vsc authenticator` and the web app so both refuse the same requests.

use serde::Serialize;
use time::OffsetDateTime;
use vsc_proto::signin::PendingAuthRequest;

/// Why a request is refused on the phone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The context shown would not be the one signed.
    #[error(
        "sign-in request {request_id} was refused on this phone: its details do not match the digest the server sent, so what you would see is not what you would approve. Do not approve it; sign in again at the workstation, and tell your IT service desk if this repeats"
    )]
    ContextMismatch {
        /// The request.
        request_id: String,
    },
    /// The request has expired.
    #[error(
        "sign-in request {request_id} has expired; sign in again at the workstation to get a new one (if every request looks expired, check this phone's clock)"
    )]
    RequestExpired {
        /// The request.
        request_id: String,
    },
    /// A request id that cannot be one.
    #[error("'{0}' is not a sign-in request id")]
    BadRequestId(String),
    /// The number typed is not a two-digit number.
    #[error(
        "{number} is not a two-digit number; type the number shown on the workstation (00 to 99)"
    )]
    NotTwoDigits {
        /// What was typed.
        number: u32,
    },
}

/// Checks a request before it is shown or signed: the context digest recomputed from what will
/// be shown must equal the server's (otherwise the context on screen would not be the one
/// signed), and the request must not have expired at `now`.
pub fn check_request(req: &PendingAuthRequest, now: OffsetDateTime) -> Result<(), SignInError> {
    let digest = vsc_proto::signin::context_digest(&req.context, req.created_at);
    if digest != req.context_digest.to_ascii_lowercase() {
        return Err(SignInError::ContextMismatch {
            request_id: req.request_id.clone(),
        });
    }
    if req.expires_at <= now {
        return Err(SignInError::RequestExpired {
            request_id: req.request_id.clone(),
        });
    }
    Ok(())
}

/// Request ids come from the server or are typed in; either is checked before it becomes part
/// of a path.
pub fn check_request_id(id: &str) -> Result<(), SignInError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(SignInError::BadRequestId(id.to_owned()));
    }
    Ok(())
}

/// The approval statement for `number`, after every local check (digest, expiry, id, number):
/// what the card's authentication key signs. Whether the number is the right one only the
/// server knows.
pub fn approval_statement(
    req: &PendingAuthRequest,
    number: u32,
    server_origin: &str,
    now: OffsetDateTime,
) -> Result<Vec<u8>, SignInError> {
    check_request(req, now)?;
    check_request_id(&req.request_id)?;
    let number = u8::try_from(number)
        .ok()
        .filter(|n| *n <= 99)
        .ok_or(SignInError::NotTwoDigits { number })?;
    // Recomputed by `check_request` and equal to the server's; signed as recomputed.
    let digest = vsc_proto::signin::context_digest(&req.context, req.created_at);
    Ok(vsc_proto::signin::approval_statement(
        &req.request_id,
        &req.nonce,
        &digest,
        number,
        server_origin,
    ))
}

/// What a phone shows for a sign-in request (both fronts render this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInView {
    /// The request id.
    pub request_id: String,
    /// Who asks: the workstation (registered or not) or the web client, in words.
    pub who: String,
    /// The organisation the workstation is registered with ("Example Trust (RX1)"), or empty.
    pub organisation: String,
    /// The address the server saw the request come from.
    pub address: String,
    /// For a web sign-in the client signed in to, else the workstation's name.
    pub client: String,
    /// Seconds until the request expires.
    pub seconds_left: i64,
    /// Everything above (and the purpose, renewal and licence notices) as lines of text.
    pub lines: Vec<String>,
}

/// Checks `req` at `now` and describes it.
pub fn view(req: &PendingAuthRequest, now: OffsetDateTime) -> Result<SignInView, SignInError> {
    check_request(req, now)?;
    check_request_id(&req.request_id)?;
    let ctx = &req.context;
    let who = ctx.workstation_label();
    let organisation = match (
        ctx.organisation_name.is_empty(),
        ctx.organisation.is_empty(),
    ) {
        (_, true) => ctx.organisation_name.clone(),
        (true, false) => ctx.organisation.clone(),
        (false, false) => format!("{} ({})", ctx.organisation_name, ctx.organisation),
    };
    let client = if ctx.web_client.is_empty() {
        ctx.workstation_name.clone()
    } else {
        ctx.web_client.clone()
    };
    let seconds_left = (req.expires_at - now).whole_seconds().max(0);
    let show = vsc_eps::screen::displayable;
    let mut lines = vec![
        format!("Sign-in request from {}", show(&who)),
        format!("Purpose: {}", show(&ctx.purpose)),
    ];
    if !organisation.is_empty() {
        lines.push(format!("Organisation: {}", show(&organisation)));
    }
    lines.push(format!("Address: {}", show(&ctx.client_address)));
    lines.push(format!("Expires in {seconds_left} s"));
    if let Some(renewal) = &req.card_renewal {
        let date = renewal.not_after.date();
        lines.push(format!(
            "Your card's certificates expire on {date}: renew the card before then"
        ));
    }
    if let Some(warning) = &req.licence_warning {
        lines.push(format!(
            "The licence for {} ends {}; this card signs in until {}",
            show(&warning.organisation),
            show(&warning.term_end),
            show(&warning.last_sign_in_day)
        ));
    }
    Ok(SignInView {
        request_id: req.request_id.clone(),
        who: show(&who),
        organisation: show(&organisation),
        address: show(&ctx.client_address),
        client: show(&client),
        seconds_left,
        lines,
    })
}
