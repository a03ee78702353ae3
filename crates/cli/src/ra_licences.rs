//! `vsc ra licences`: virtual smartcard licences, as the NHS runs them.
//!
//! A national pool, held by the national organisation, is allocated to organisations in blocks
//! with a term. An organisation's RA Manager applies (`apply`); national RA Managers approve the
//! waiting list first come, first served while the pool lasts (`approve`); a card takes a
//! licence when it is issued and gives it back when cancelled; unused licences can be returned
//! (`return`), which serves the waiting list in order; an organisation asks for a term to be
//! extended (`extend`), and national RA Managers approve the extension queue first come, first
//! served while the pool's funding lasts (`extensions --approve`). Topping the pool up serves
//! the queues. `report` shows each organisation's standing, as text, JSON or CSV.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use vsc_https::Client;
use vsc_proto::licences::{
    Application, Apply, Approve, ApproveExtensions, Extend, Extension, Extensions,
    ExtensionsChanged, LicencesChanged, Pool, Report, Return, SetPool, WithdrawExtension,
};
use vsc_proto::routes;

const LICENCES_HELP: &str = "\
How licences work: licences are enforced once a national RA Manager creates the pool (`vsc ra \
licences pool --add N`); before that, cards are issued without one. Each card takes a licence \
from its organisation's blocks when it is issued, and gives it back when cancelled. Issuing a \
card without a free licence is refused with `no_free_licence`, saying where the organisation \
stands in the waiting list. When a block's term ends, its cards still sign in for the pool's \
grace period, then are refused with `licence_expired` until the term is extended; from the \
pool's warning period before the end, the report warns RAs and each sign-in warns the card's \
holder (the workstation agent and the phone show it).\n\n\
Who: national RA Managers (an RA Manager at the national organisation) run the pool and approve \
applications and extensions; an organisation's RA Managers apply, return, and ask for and \
withdraw extensions; every RA may see the report and the extension queue (their own \
organisations; national RAs all).";

/// `vsc ra licences …`.
#[derive(Debug, Subcommand)]
pub enum LicencesCommand {
    /// Show the licence pool and its waiting list; with options, create or top it up.
    #[command(
        long_about = "Show the national licence pool: licences in all, allocated, available, \
extension funding left (licence-days), the grace, warning and default term periods, and the \
waiting list in order. With any option, create the pool (the first time; licences are enforced \
from then on) or change it: add licences (a top-up), add funding, set the periods. Adding never \
takes licences away. Added licences serve the waiting list at once, in order (with the default \
term); added funding serves the extension queue at once, in order. National RA Managers only \
for changes; any RA may look.",
        after_help = format!("Examples:\n  vsc ra licences pool\n  \
vsc ra licences pool --add 500 --add-funding 50000 --grace-days 14 --warn-days 30\n\n{LICENCES_HELP}")
    )]
    Pool {
        /// Licences to add to the pool.
        #[arg(long, value_name = "N")]
        add: Option<i64>,
        /// Extension funding to add, in licence-days (extending 10 licences by 30 days costs
        /// 300).
        #[arg(long, value_name = "LICENCE_DAYS")]
        add_funding: Option<i64>,
        /// Days a card still signs in after its licence's term ended (0 to 90; default 14).
        #[arg(long, value_name = "DAYS")]
        grace_days: Option<i64>,
        /// Days before a term ends from which the report warns (1 to 365; default 30).
        #[arg(long, value_name = "DAYS")]
        warn_days: Option<i64>,
        /// The term an approval gives when it names no end (1 to 3650 days; default 365).
        #[arg(long, value_name = "DAYS")]
        term_days: Option<i64>,
    },
    /// Apply for licences for an organisation (joins the waiting list).
    #[command(
        long_about = "Apply for a number of licences for an organisation, with a contact and the \
systems they are for. The application joins the end of the waiting list; national RA Managers \
approve the list first come, first served. RA Managers of the organisation (or national ones).",
        after_help = format!("Example:\n  vsc ra licences apply RX1 --count 40 --contact \"Jo Bloggs, jo.bloggs@nhs.net\" --systems \"EPS, SCR\"\n\n{LICENCES_HELP}")
    )]
    Apply {
        /// The organisation's ODS code.
        organisation: String,
        /// How many licences (1 to 100000).
        #[arg(long, value_name = "N")]
        count: i64,
        /// Who to contact about the application.
        #[arg(long, value_name = "TEXT")]
        contact: String,
        /// For which systems (for example "EPS, SCR").
        #[arg(long, value_name = "TEXT")]
        systems: String,
    },
    /// Approve the waiting list, first come first served, while the pool lasts.
    #[command(
        long_about = "Approve waiting applications first come, first served: in order (time of \
application, then id) while \
the pool has enough licences for the next one; the first that does not fit stops the run and \
keeps its place (a smaller later application never jumps it). With an application id, approve \
only that one, which must be first in the list. Each approved application becomes a block with \
a term: from --start (default today) to --end (default the pool's term). National RA Managers \
only.",
        after_help = format!("Examples:\n  vsc ra licences approve\n  vsc ra licences approve 12 --end 2027-03-31\n\n{LICENCES_HELP}")
    )]
    Approve {
        /// Only this application (it must be first in the waiting list).
        application: Option<i64>,
        /// The term's first day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        start: Option<String>,
        /// The term's last day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        end: Option<String>,
    },
    /// Return unused licences to the pool; the waiting list is then served in order.
    #[command(
        name = "return",
        long_about = "Give back unused licences of an organisation (from its blocks ending \
soonest first; licences held by cards cannot be returned: cancel the cards first). The pool \
then approves the waiting list in order as far as it lasts. RA Managers of the organisation (or \
national ones).",
        after_help = format!("Example:\n  vsc ra licences return RX1 --count 5\n\n{LICENCES_HELP}")
    )]
    Return {
        /// The organisation's ODS code.
        organisation: String,
        /// How many.
        #[arg(long, value_name = "N")]
        count: i64,
    },
    /// Ask for a block's term to be extended (joins the extension queue).
    #[command(
        long_about = "Ask for the term of one block (its application id, as `report` shows) to \
end on a later day. The request joins the extension queue; national RA Managers approve the \
queue first come, first served while the pool's funding lasts (`extensions --approve`): each \
request costs the block's licences times the days added, in licence-days. A block has at most \
one request waiting (withdraw it with `extensions --withdraw ID` to ask for another day); a \
block whose grace period is over cannot be extended (apply again). When a national RA Manager \
asks and the request is first in the queue and funded, it is approved at once. RA Managers of \
the block's organisation (or national ones).",
        after_help = format!("Examples:\n  vsc ra licences extend 12 --to 2028-03-31\n  vsc ra licences extensions\n\n{LICENCES_HELP}")
    )]
    Extend {
        /// The block (application id).
        application: i64,
        /// The new last day (YYYY-MM-DD), after the current one.
        #[arg(long, visible_alias = "end", value_name = "DATE")]
        to: String,
    },
    /// The extension queue; approve it in order (--approve) or withdraw a request (--withdraw).
    #[command(
        long_about = "List the requests to extend blocks' terms: the waiting ones first come, first \
served with their place in the queue and what each would cost now, then the decided ones \
(approved, withdrawn, lapsed). RAs see their own organisations' requests; national RAs all. \
With --approve, a national RA Manager approves the queue in order while the pool's funding \
lasts: the first request is approved in full or the run stops and it keeps its place (a later, \
cheaper one never jumps it); `--approve ID` approves only that one, which must be first. A \
request whose block's grace period ended while it waited lapses. With --withdraw ID, an RA \
Manager of the request's organisation (or a national one) withdraws a waiting request.",
        after_help = format!("Examples:\n  vsc ra licences extensions\n  vsc ra licences extensions --approve\n  vsc ra licences extensions --approve 4\n  vsc ra licences extensions --withdraw 4\n\n{LICENCES_HELP}")
    )]
    Extensions {
        /// Approve the queue in order while the funding lasts (with ID: only that request).
        #[arg(long, value_name = "ID", num_args = 0..=1, conflicts_with = "withdraw")]
        approve: Option<Option<i64>>,
        /// Withdraw this waiting request.
        #[arg(long, value_name = "ID")]
        withdraw: Option<i64>,
    },
    /// Per organisation: allocated, used, free, waiting, expiring (text, --json or --csv).
    #[command(
        long_about = "Report each organisation's licences: allocated (in blocks not past their \
grace period), used (held by cards), free (in blocks in term), waiting (asked for, with the \
first application's place in the waiting list) and expiring (in blocks ending within the \
warning period or in grace, with the earliest end) and extension requests waiting (with the \
first one's place in the extension queue and the day it asks for); then the blocks expiring, \
the extension requests waiting, each block and the warnings. RAs see their own organisations; \
RAs at the national organisation see all. The CSV has one line per organisation with the \
columns of the text table; --json adds each block's `extension_requested_to`.",
        after_help = format!("Examples:\n  vsc ra licences report\n  vsc ra licences report --csv > licences.csv\n  vsc ra --json licences report\n\n{LICENCES_HELP}")
    )]
    Report {
        /// Print CSV (one line per organisation) instead of text.
        #[arg(long)]
        csv: bool,
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

fn application_line(a: &Application) -> String {
    let mut line = format!(
        "{:>5}  {:<8} {:<9}",
        format!("#{}", a.id),
        a.organisation,
        a.state
    );
    if let Some(p) = a.position {
        line.push_str(&format!(
            " place {p}: {} licences, applied {}",
            a.requested, a.applied_at
        ));
    } else {
        line.push_str(&format!(
            " {} allocated, {} used, term {} to {}",
            a.allocated,
            a.used,
            a.start.as_deref().unwrap_or("-"),
            a.end.as_deref().unwrap_or("-")
        ));
    }
    if let (Some(to), Some(p)) = (&a.extension_requested_to, a.extension_position) {
        line.push_str(&format!(", extension to {to} requested (place {p})"));
    }
    line.push_str(&format!("  [{}; {}]", a.systems, a.contact));
    line
}

fn extension_line(e: &Extension) -> String {
    let head = format!(
        "{:>5}  {:<8} block #{} ({} licences)",
        format!("#{}", e.id),
        e.organisation,
        e.application,
        e.licences
    );
    let by = |what: &str| {
        format!(
            "{what} by {} {}",
            e.decided_by.as_deref().unwrap_or("-"),
            e.decided_at.as_deref().unwrap_or("-")
        )
    };
    match (e.state.as_str(), e.position) {
        ("waiting", Some(p)) => format!(
            "{head}: {} -> {}, place {p}, costs {} licence-days now; asked by {} {}",
            e.current_end, e.end, e.cost, e.requested_by, e.requested_at
        ),
        ("approved", _) => format!(
            "{head}: extended to {}, {}",
            e.end,
            by(&format!("approved ({} licence-days)", e.cost))
        ),
        (state, _) => format!("{head}: to {}, {}", e.end, by(state)),
    }
}

fn print_extensions(x: &Extensions) {
    println!(
        "Extension funding left: {} licence-days; {} requests waiting",
        x.funding, x.waiting
    );
    if x.requests.is_empty() {
        println!("No extension requests.");
    } else {
        println!("Extension requests (waiting first, first come, first served):");
        for e in &x.requests {
            println!("{}", extension_line(e));
        }
    }
}

fn print_extensions_changed(c: &ExtensionsChanged, what: &str) {
    if let Some(e) = &c.request {
        println!("{what}:");
        println!("{}", extension_line(e));
    }
    if !c.approved.is_empty() {
        println!("Extensions approved:");
        for e in &c.approved {
            println!("{}", extension_line(e));
        }
    }
    if !c.lapsed.is_empty() {
        println!("Lapsed (the block's grace period was over):");
        for e in &c.lapsed {
            println!("{}", extension_line(e));
        }
    }
    println!(
        "Extension funding left: {} licence-days; {} requests waiting",
        c.funding, c.waiting
    );
}

fn print_pool(p: &Pool) {
    if !p.exists {
        println!(
            "No licence pool: licences are not enforced (a national RA Manager creates it with `vsc ra licences pool --add N`)."
        );
    } else {
        println!(
            "Pool: {} licences, {} allocated, {} available; funding {} licence-days",
            p.total, p.allocated, p.available, p.funding
        );
        println!(
            "Grace period {} days, warnings from {} days before a term ends, default term {} days",
            p.grace_days, p.warn_days, p.term_days
        );
    }
    if p.waiting.is_empty() {
        println!("Waiting list: empty");
    } else {
        println!("Waiting list (first come, first served):");
        for a in &p.waiting {
            println!("{}", application_line(a));
        }
    }
}

fn print_changed(c: &LicencesChanged, what: &str) {
    if let Some(a) = &c.application {
        println!("{what}:");
        println!("{}", application_line(a));
    }
    if !c.approved.is_empty() {
        println!("Approved:");
        for a in &c.approved {
            println!("{}", application_line(a));
        }
    } else if c.application.is_none() {
        println!("{what}; no application approved.");
    }
    if !c.extensions_approved.is_empty() {
        println!("Extensions approved:");
        for e in &c.extensions_approved {
            println!("{}", extension_line(e));
        }
    }
    print_pool(&c.pool);
}

fn print_report(r: &Report) {
    if !r.enforced {
        println!("Licences are not enforced: there is no licence pool.");
    }
    println!(
        "{:<8} {:>9} {:>6} {:>6} {:>8} {:>6} {:>9} {:>11}  {:<11} extension to",
        "org",
        "allocated",
        "used",
        "free",
        "waiting",
        "place",
        "expiring",
        "expiring on",
        "extensions"
    );
    for o in &r.organisations {
        println!(
            "{:<8} {:>9} {:>6} {:>6} {:>8} {:>6} {:>9} {:>11}  {:<11} {}",
            o.organisation,
            o.allocated,
            o.used,
            o.free,
            o.waiting,
            o.waiting_position
                .map(|p| p.to_string())
                .unwrap_or("-".into()),
            o.expiring,
            o.expiring_on.as_deref().unwrap_or("-"),
            match o.extension_position {
                Some(p) => format!("{} (place {p})", o.extensions_waiting),
                None => "-".into(),
            },
            o.extension_requested_to.as_deref().unwrap_or("-")
        );
    }
    if !r.warnings.is_empty() {
        println!();
        println!("Expiring blocks (their cards stop signing in after the grace period):");
        for w in &r.warnings {
            println!("warning: {w}");
        }
    }
    println!();
    if r.extensions.is_empty() {
        println!("Extension requests waiting: none");
    } else {
        println!("Extension requests waiting (first come, first served):");
        for e in &r.extensions {
            println!("{}", extension_line(e));
        }
    }
    if !r.applications.is_empty() {
        println!();
        println!("Applications and blocks:");
        for a in &r.applications {
            println!("{}", application_line(a));
        }
    }
}

/// Runs a `vsc ra licences` command.
pub async fn run(
    command: LicencesCommand,
    client: &Client,
    token: &str,
    json: bool,
) -> Result<ExitCode> {
    match command {
        LicencesCommand::Pool {
            add,
            add_funding,
            grace_days,
            warn_days,
            term_days,
        } => {
            let change = SetPool {
                add_licences: add,
                add_funding,
                grace_days,
                warn_days,
                term_days,
            };
            if change == SetPool::default() {
                let pool: Pool = client
                    .get_json(routes::RA_LICENCES_POOL, Some(token))
                    .await?;
                print(json, &pool, print_pool)?;
            } else {
                let changed: LicencesChanged = client
                    .post_json(routes::RA_LICENCES_POOL, &change, Some(token))
                    .await?;
                print(json, &changed, |c| {
                    for a in &c.approved {
                        println!("Approved from the top-up: {}", application_line(a));
                    }
                    for e in &c.extensions_approved {
                        println!("Extension approved from the top-up: {}", extension_line(e));
                    }
                    print_pool(&c.pool)
                })?;
            }
        }
        LicencesCommand::Apply {
            organisation,
            count,
            contact,
            systems,
        } => {
            let req = Apply {
                organisation,
                count,
                contact,
                systems,
            };
            let changed: LicencesChanged = client
                .post_json(routes::RA_LICENCES_APPLY, &req, Some(token))
                .await?;
            print(json, &changed, |c| print_changed(c, "Applied"))?;
        }
        LicencesCommand::Approve {
            application,
            start,
            end,
        } => {
            let req = Approve {
                application,
                start,
                end,
            };
            let changed: LicencesChanged = client
                .post_json(routes::RA_LICENCES_APPROVE, &req, Some(token))
                .await?;
            print(json, &changed, |c| print_changed(c, "Approved"))?;
        }
        LicencesCommand::Return {
            organisation,
            count,
        } => {
            let req = Return {
                organisation,
                count,
            };
            let changed: LicencesChanged = client
                .post_json(routes::RA_LICENCES_RETURN, &req, Some(token))
                .await?;
            print(json, &changed, |c| print_changed(c, "Returned"))?;
        }
        LicencesCommand::Extend { application, to } => {
            let req = Extend {
                application,
                end: to,
            };
            let changed: ExtensionsChanged = client
                .post_json(routes::RA_LICENCES_EXTENSIONS, &req, Some(token))
                .await?;
            print(json, &changed, |c| {
                let approved = c
                    .approved
                    .iter()
                    .any(|e| Some(e.id) == c.request.as_ref().map(|r| r.id));
                print_extensions_changed(
                    c,
                    if approved {
                        "Extended"
                    } else {
                        "Requested (waiting for a national RA Manager's approval)"
                    },
                )
            })?;
        }
        LicencesCommand::Extensions { approve, withdraw } => {
            if let Some(request) = approve {
                let changed: ExtensionsChanged = client
                    .post_json(
                        routes::RA_LICENCES_EXTENSIONS_APPROVE,
                        &ApproveExtensions { request },
                        Some(token),
                    )
                    .await?;
                print(json, &changed, |c| {
                    if c.approved.is_empty() {
                        println!("No extension request approved.");
                    }
                    print_extensions_changed(c, "Approved")
                })?;
            } else if let Some(request) = withdraw {
                let changed: ExtensionsChanged = client
                    .post_json(
                        routes::RA_LICENCES_EXTENSIONS_WITHDRAW,
                        &WithdrawExtension { request },
                        Some(token),
                    )
                    .await?;
                print(json, &changed, |c| print_extensions_changed(c, "Withdrawn"))?;
            } else {
                let list: Extensions = client
                    .get_json(routes::RA_LICENCES_EXTENSIONS, Some(token))
                    .await?;
                print(json, &list, print_extensions)?;
            }
        }
        LicencesCommand::Report { csv } => {
            let report: Report = client
                .get_json(routes::RA_LICENCES_REPORT, Some(token))
                .await?;
            if csv {
                print!("{}", report.to_csv());
            } else {
                print(json, &report, print_report)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
