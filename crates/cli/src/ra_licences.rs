//! `vsc ra licences`: virtual smartcard licences, as the NHS runs them.
//!
//! A national pool, held by the national organisation, is allocated to organisations in blocks
//! with a term. An organisation's RA Manager applies (`apply`); national RA Managers approve the
//! waiting list first come, first served while the pool lasts (`approve`); a card takes a
//! licence when it is issued and gives it back when cancelled; unused licences can be returned
//! (`return`), which serves the waiting list in order; a term can be extended from the pool's
//! funding (`extend`). `report` shows each organisation's standing, as text, JSON or CSV.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use vsc_https::Client;
use vsc_proto::licences::{
    Application, Apply, Approve, Extend, LicencesChanged, Pool, Report, Return, SetPool,
};
use vsc_proto::routes;

const LICENCES_HELP: &str = "\
How licences work: licences are enforced once a national RA Manager creates the pool (`vsc ra \
licences pool --add N`); before that, cards are issued without one. Each card takes a licence \
from its organisation's blocks when it is issued, and gives it back when cancelled. Issuing a \
card without a free licence is refused with `no_free_licence`, saying where the organisation \
stands in the waiting list. When a block's term ends, its cards still sign in for the pool's \
grace period, then are refused with `licence_expired` until the term is extended; the report \
warns from the pool's warning period before the end.\n\n\
Who: national RA Managers (an RA Manager at the national organisation) run the pool, approve \
and extend; an organisation's RA Managers apply and return; every RA may see the report (their \
own organisations; national RAs all).";

/// `vsc ra licences …`.
#[derive(Debug, Subcommand)]
pub enum LicencesCommand {
    /// Show the licence pool and its waiting list; with options, create or top it up.
    #[command(
        long_about = "Show the national licence pool: licences in all, allocated, available, \
extension funding left (licence-days), the grace, warning and default term periods, and the \
waiting list in order. With any option, create the pool (the first time; licences are enforced \
from then on) or change it: add licences (a top-up), add funding, set the periods. Adding never \
takes licences away. National RA Managers only for changes; any RA may look.",
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
    /// Extend a block's term, paid from the pool's funding.
    #[command(
        long_about = "Extend the term of one block (its application id, as `report` shows) to a \
new last day, on the organisation's request, first come first served while the pool's funding \
lasts: it costs the block's licences times the days added. Refused, with nothing changed, \
beyond the funding. National RA Managers only.",
        after_help = format!("Example:\n  vsc ra licences extend 12 --end 2028-03-31\n\n{LICENCES_HELP}")
    )]
    Extend {
        /// The block (application id).
        application: i64,
        /// The new last day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        end: String,
    },
    /// Per organisation: allocated, used, free, waiting, expiring (text, --json or --csv).
    #[command(
        long_about = "Report each organisation's licences: allocated (in blocks not past their \
grace period), used (held by cards), free (in blocks in term), waiting (asked for, with the \
first application's place in the waiting list) and expiring (in blocks ending within the \
warning period or in grace, with the earliest end), then each block and the warnings. RAs see \
their own organisations; RAs at the national organisation see all.",
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
    line.push_str(&format!("  [{}; {}]", a.systems, a.contact));
    line
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
    print_pool(&c.pool);
}

fn print_report(r: &Report) {
    if !r.enforced {
        println!("Licences are not enforced: there is no licence pool.");
    }
    println!(
        "{:<8} {:>9} {:>6} {:>6} {:>8} {:>6} {:>9}  expiring on",
        "org", "allocated", "used", "free", "waiting", "place", "expiring"
    );
    for o in &r.organisations {
        println!(
            "{:<8} {:>9} {:>6} {:>6} {:>8} {:>6} {:>9}  {}",
            o.organisation,
            o.allocated,
            o.used,
            o.free,
            o.waiting,
            o.waiting_position
                .map(|p| p.to_string())
                .unwrap_or("-".into()),
            o.expiring,
            o.expiring_on.as_deref().unwrap_or("-")
        );
    }
    if !r.applications.is_empty() {
        println!();
        println!("Applications and blocks:");
        for a in &r.applications {
            println!("{}", application_line(a));
        }
    }
    for w in &r.warnings {
        println!("warning: {w}");
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
            let pool: Pool = if change == SetPool::default() {
                client
                    .get_json(routes::RA_LICENCES_POOL, Some(token))
                    .await?
            } else {
                client
                    .post_json(routes::RA_LICENCES_POOL, &change, Some(token))
                    .await?
            };
            print(json, &pool, print_pool)?;
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
        LicencesCommand::Extend { application, end } => {
            let req = Extend { application, end };
            let changed: LicencesChanged = client
                .post_json(routes::RA_LICENCES_EXTEND, &req, Some(token))
                .await?;
            print(json, &changed, |c| print_changed(c, "Extended"))?;
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
