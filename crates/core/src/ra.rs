//! Registration Authority roles and the permission matrix of the NHS Care Identity Management
//! (CIM) guides, with the organisation scope every RA action is checked against.
//!
//! A grant gives one RA role at one organisation. Grants held at the national organisation
//! apply to every organisation: somebody has to set up the first RA Manager of a new trust.
//!
//! Three limits sit on top of the matrix (issue 9): an RA never acts on their own record
//! ([`not_own_record`]); what a position may carry is limited by the role granting it
//! ([`authorize_position`]: a Sponsor only the roles *and* activities it sponsors, never a
//! prescribing activity); and bringing a person into an organisation where they are not yet
//! registered and hold no position takes the consent of their registering organisation
//! ([`RaAction::ReleaseToOrganisation`]), which the server enforces with position requests.

use std::fmt;
use std::str::FromStr;

use crate::names::stored_names;
use serde::{Deserialize, Serialize};

use crate::ids::{ActivityCode, OdsCode, RoleCode};

/// The RA roles of CIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaRole {
    /// RA Manager: runs the organisation's RA, may do everything.
    RaManager,
    /// RA Agent: creates profiles, issues and cancels cards, assigns positions.
    RaAgent,
    /// Sponsor: vouches for staff, assigns the positions it sponsors, unlocks cards.
    Sponsor,
    /// ID Checker: verifies identity and creates profiles.
    IdChecker,
    /// Local Smartcard Administrator: unlocks cards.
    LocalSmartcardAdministrator,
    /// Service Manager (not a CIM role): registers the OpenID Connect clients (relying parties)
    /// of its organisation's services; a national one registers anybody's. Nothing else.
    ServiceManager,
}

impl RaRole {
    /// Every role, in the order CIM lists them.
    pub const ALL: [RaRole; 6] = [
        RaRole::RaManager,
        RaRole::RaAgent,
        RaRole::Sponsor,
        RaRole::IdChecker,
        RaRole::LocalSmartcardAdministrator,
        RaRole::ServiceManager,
    ];

    /// The wire and database name (`ra-manager`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RaRole::RaManager => "ra-manager",
            RaRole::RaAgent => "ra-agent",
            RaRole::Sponsor => "sponsor",
            RaRole::IdChecker => "id-checker",
            RaRole::LocalSmartcardAdministrator => "local-smartcard-administrator",
            RaRole::ServiceManager => "service-manager",
        }
    }

    /// The name a person reads.
    pub fn title(self) -> &'static str {
        match self {
            RaRole::RaManager => "RA Manager",
            RaRole::RaAgent => "RA Agent",
            RaRole::Sponsor => "Sponsor",
            RaRole::IdChecker => "ID Checker",
            RaRole::LocalSmartcardAdministrator => "Local Smartcard Administrator",
            RaRole::ServiceManager => "Service Manager",
        }
    }

    /// Whether this role may perform `action` at all (scope is checked separately).
    pub fn permits(self, action: RaAction) -> bool {
        use RaAction::*;
        use RaRole::*;
        match action {
            View => true,
            CreateProfile | RecordIdentityCheck => matches!(self, RaManager | RaAgent | IdChecker),
            IssueCard | CancelCard => matches!(self, RaManager | RaAgent),
            UnlockCard => matches!(
                self,
                RaManager | RaAgent | Sponsor | LocalSmartcardAdministrator
            ),
            AssignPosition => matches!(self, RaManager | RaAgent | Sponsor),
            ReleaseToOrganisation => matches!(self, RaManager | RaAgent),
            AssignRaRole | CreateOrganisation => matches!(self, RaManager),
            ManageClients => matches!(self, RaManager | ServiceManager),
            ManageVersions => matches!(self, RaManager),
        }
    }
}

impl FromStr for RaRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        let found = RaRole::ALL.into_iter().find(|r| {
            r.as_str() == t
                || match r {
                    RaRole::RaManager => t == "ram",
                    RaRole::RaAgent => t == "raa",
                    RaRole::IdChecker => t == "idc",
                    RaRole::LocalSmartcardAdministrator => t == "lsa",
                    RaRole::ServiceManager => t == "sm",
                    RaRole::Sponsor => false,
                }
        });
        found.ok_or_else(|| {
            format!(
                "'{s}' is not an RA role: use one of ra-manager (ram), ra-agent (raa), sponsor, id-checker (idc), local-smartcard-administrator (lsa), service-manager (sm)"
            )
        })
    }
}

impl fmt::Display for RaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// What an RA asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaAction {
    /// Read people, cards and organisations.
    View,
    /// Create a person's profile.
    CreateProfile,
    /// Record that a person's identity was checked.
    RecordIdentityCheck,
    /// Issue a virtual smartcard.
    IssueCard,
    /// Unlock a passcode-locked card.
    UnlockCard,
    /// Cancel a card (revoking its certificates).
    CancelCard,
    /// Assign a position (organisation + NRBAC role) to a person.
    AssignPosition,
    /// Consent, as the person's registering organisation, to a position at another
    /// organisation (which brings the person into that organisation's scope).
    ReleaseToOrganisation,
    /// Give a person an RA role.
    AssignRaRole,
    /// Register a new organisation (national RA Managers only).
    CreateOrganisation,
    /// Register, disable and rotate the secrets of OpenID Connect clients. The matrix allows it
    /// to RA Managers and Service Managers; the server further limits RA Managers to grants at
    /// the national organisation and a Service Manager to its own organisation's clients.
    ManageClients,
    /// Allow, deny and remove approved client versions (`vsc ra versions`). The policy is
    /// instance-wide, so the server further limits it to RA Managers with a grant at the
    /// national organisation; every RA may list it.
    ManageVersions,
}

impl RaAction {
    /// Words for error messages ("issue a card").
    pub fn describe(self) -> &'static str {
        match self {
            RaAction::View => "view RA records",
            RaAction::CreateProfile => "create a profile",
            RaAction::RecordIdentityCheck => "record an identity check",
            RaAction::IssueCard => "issue a card",
            RaAction::UnlockCard => "unlock a card",
            RaAction::CancelCard => "cancel a card",
            RaAction::AssignPosition => "assign a position",
            RaAction::ReleaseToOrganisation => {
                "approve a position at another organisation for a person registered here"
            }
            RaAction::AssignRaRole => "assign an RA role",
            RaAction::CreateOrganisation => "create an organisation",
            RaAction::ManageClients => "manage OpenID Connect clients",
            RaAction::ManageVersions => "change the approved client versions",
        }
    }
}

/// One RA role held at one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaGrant {
    /// The role.
    pub role: RaRole,
    /// Where it applies.
    pub organisation: OdsCode,
    /// For a Sponsor: the NRBAC role codes it may assign. Empty for other roles.
    #[serde(default)]
    pub assignable_roles: Vec<RoleCode>,
    /// For a Sponsor: the activity codes it may put into the positions it assigns. Empty for
    /// other roles (RA Managers and RA Agents grant any activity).
    #[serde(default)]
    pub assignable_activities: Vec<ActivityCode>,
}

/// Why an RA action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaScopeError {
    /// None of the RA's roles allows the action anywhere.
    #[error("your RA roles do not allow you to {}", action.describe())]
    RoleNotPermitted {
        /// The action asked for.
        action: RaAction,
    },
    /// A role allows it, but not at this organisation.
    #[error("you may {} only in your own organisation(s); {organisation} is not one of them", action.describe())]
    OutsideOrganisation {
        /// The action asked for.
        action: RaAction,
        /// The organisation it was asked for.
        organisation: OdsCode,
    },
    /// A Sponsor may assign only the positions it sponsors.
    #[error("as a Sponsor at {organisation} you may not assign role {role}")]
    SponsorMayNotAssign {
        /// Where.
        organisation: OdsCode,
        /// The role code it tried to assign.
        role: RoleCode,
    },
    /// A Sponsor may put only the activities it sponsors into a position.
    #[error("as a Sponsor at {organisation} you may not grant activity {activity}")]
    SponsorMayNotAssignActivity {
        /// Where.
        organisation: OdsCode,
        /// The activity code it tried to grant.
        activity: ActivityCode,
    },
    /// Prescribing activities are granted by RA Managers and RA Agents only.
    #[error(
        "activity {activity} lets its holder sign prescriptions; only an RA Manager or RA Agent of {organisation} may grant it"
    )]
    PrescribingActivityNotPermitted {
        /// Where.
        organisation: OdsCode,
        /// The prescribing activity code.
        activity: ActivityCode,
    },
    /// Nobody acts as an RA on their own record.
    #[error("you may not {} on your own record; ask another RA of your organisation", action.describe())]
    OwnRecord {
        /// The action asked for.
        action: RaAction,
    },
}

/// Refuses an RA action whose subject is the RA themself: positions, RA roles, identity checks
/// and cards of one's own are always somebody else's decision.
pub fn not_own_record(
    caller_uid: &str,
    subject_uid: &str,
    action: RaAction,
) -> Result<(), RaScopeError> {
    if caller_uid == subject_uid {
        return Err(RaScopeError::OwnRecord { action });
    }
    Ok(())
}

/// Checks that `grants` allow assigning the position `role` with `activities` at
/// `organisation`. RA Managers and RA Agents (there or national) may grant any role and
/// activity; a Sponsor only a role in its `assignable_roles`, only activities in its
/// `assignable_activities`, and never one of `prescribing` (the activity codes that let a
/// holder sign prescriptions).
pub fn authorize_position<'a>(
    grants: &'a [RaGrant],
    organisation: &OdsCode,
    national: &OdsCode,
    role: &RoleCode,
    activities: &[ActivityCode],
    prescribing: &[ActivityCode],
) -> Result<&'a RaGrant, RaScopeError> {
    let action = RaAction::AssignPosition;
    let capable: Vec<&RaGrant> = grants.iter().filter(|g| g.role.permits(action)).collect();
    if capable.is_empty() {
        return Err(RaScopeError::RoleNotPermitted { action });
    }
    let in_scope: Vec<&RaGrant> = capable
        .into_iter()
        .filter(|g| &g.organisation == organisation || &g.organisation == national)
        .collect();
    if in_scope.is_empty() {
        return Err(RaScopeError::OutsideOrganisation {
            action,
            organisation: organisation.clone(),
        });
    }
    if let Some(g) = in_scope.iter().find(|g| g.role != RaRole::Sponsor) {
        return Ok(g);
    }
    // Only Sponsor grants are left: the most specific refusal wins.
    if let Some(a) = activities.iter().find(|a| prescribing.contains(a)) {
        return Err(RaScopeError::PrescribingActivityNotPermitted {
            organisation: organisation.clone(),
            activity: a.clone(),
        });
    }
    let mut refusal = None;
    for g in in_scope {
        if !g.assignable_roles.contains(role) {
            refusal.get_or_insert(RaScopeError::SponsorMayNotAssign {
                organisation: organisation.clone(),
                role: role.clone(),
            });
            continue;
        }
        if let Some(a) = activities
            .iter()
            .find(|a| !g.assignable_activities.contains(a))
        {
            refusal = Some(RaScopeError::SponsorMayNotAssignActivity {
                organisation: organisation.clone(),
                activity: a.clone(),
            });
            continue;
        }
        return Ok(g);
    }
    Err(refusal.unwrap_or(RaScopeError::SponsorMayNotAssign {
        organisation: organisation.clone(),
        role: role.clone(),
    }))
}

/// Checks that `grants` allow `action` at `organisation` (and, for a position, with `role`).
///
/// Returns the grant that allows it, so the audit log can say in which capacity the RA acted.
pub fn authorize<'a>(
    grants: &'a [RaGrant],
    action: RaAction,
    organisation: &OdsCode,
    national: &OdsCode,
    position_role: Option<&RoleCode>,
) -> Result<&'a RaGrant, RaScopeError> {
    let capable: Vec<&RaGrant> = grants.iter().filter(|g| g.role.permits(action)).collect();
    if capable.is_empty() {
        return Err(RaScopeError::RoleNotPermitted { action });
    }
    let in_scope: Vec<&RaGrant> = capable
        .into_iter()
        .filter(|g| &g.organisation == organisation || &g.organisation == national)
        .collect();
    if in_scope.is_empty() {
        return Err(RaScopeError::OutsideOrganisation {
            action,
            organisation: organisation.clone(),
        });
    }
    // Prefer a grant that is not limited by sponsorship.
    if let Some(g) = in_scope.iter().find(|g| g.role != RaRole::Sponsor) {
        return Ok(g);
    }
    match (action, position_role) {
        (RaAction::AssignPosition, Some(role)) => in_scope
            .into_iter()
            .find(|g| g.assignable_roles.contains(role))
            .ok_or_else(|| RaScopeError::SponsorMayNotAssign {
                organisation: organisation.clone(),
                role: role.clone(),
            }),
        _ => Ok(in_scope[0]),
    }
}

/// Where a position request stands (see [`RaAction::ReleaseToOrganisation`]). Stored and sent as
/// [`PositionRequestState::as_str`]; a pending request past its expiry is shown as `expired`
/// without being rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionRequestState {
    /// Waiting for an RA Manager or RA Agent of the person's registering organisation.
    Pending,
    /// Approved: the position was assigned. Final.
    Approved,
    /// Declined. Final.
    Declined,
}

stored_names!(PositionRequestState, "position request state" {
    Pending => "pending",
    Approved => "approved",
    Declined => "declined",
});

#[cfg(test)]
mod tests {
    use super::*;
    use RaAction::*;
    use RaRole::*;

    fn ods(s: &str) -> OdsCode {
        s.parse().expect("valid ODS code")
    }
    fn grant(role: RaRole, org: &str) -> RaGrant {
        RaGrant {
            role,
            organisation: ods(org),
            assignable_roles: vec![],
            assignable_activities: vec![],
        }
    }

    #[test]
    fn matrix_matches_the_cim_guides() {
        let expect = |action: RaAction, allowed: &[RaRole]| {
            for role in RaRole::ALL {
                assert_eq!(
                    role.permits(action),
                    allowed.contains(&role),
                    "{role:?} {action:?}"
                );
            }
        };
        expect(CreateProfile, &[RaManager, RaAgent, IdChecker]);
        expect(IssueCard, &[RaManager, RaAgent]);
        expect(
            UnlockCard,
            &[RaManager, RaAgent, Sponsor, LocalSmartcardAdministrator],
        );
        expect(CancelCard, &[RaManager, RaAgent]);
        expect(AssignPosition, &[RaManager, RaAgent, Sponsor]);
        expect(AssignRaRole, &[RaManager]);
        expect(ReleaseToOrganisation, &[RaManager, RaAgent]);
        expect(CreateOrganisation, &[RaManager]);
        expect(ManageClients, &[RaManager, ServiceManager]);
        expect(ManageVersions, &[RaManager]);
        expect(
            View,
            &[
                RaManager,
                RaAgent,
                Sponsor,
                IdChecker,
                LocalSmartcardAdministrator,
                ServiceManager,
            ],
        );
    }

    #[test]
    fn a_service_manager_manages_clients_and_nothing_else() {
        let national = ods("X26");
        let g = [grant(ServiceManager, "RX1")];
        assert!(authorize(&g, ManageClients, &ods("RX1"), &national, None).is_ok());
        for action in [
            CreateProfile,
            RecordIdentityCheck,
            IssueCard,
            UnlockCard,
            CancelCard,
            AssignPosition,
            ReleaseToOrganisation,
            AssignRaRole,
            CreateOrganisation,
            ManageVersions,
        ] {
            assert_eq!(
                authorize(&g, action, &ods("RX1"), &national, None),
                Err(RaScopeError::RoleNotPermitted { action }),
                "{action:?}"
            );
        }
    }

    #[test]
    fn positions_carry_only_what_the_granting_role_may_grant() {
        let national = ods("X26");
        let role: RoleCode = "S8000:G8000:R8000".parse().expect("role");
        let act = |s: &str| -> ActivityCode { s.parse().expect("activity") };
        let prescribing = [act("B0420")];
        let sponsor = [RaGrant {
            role: Sponsor,
            organisation: ods("RX1"),
            assignable_roles: vec![role.clone()],
            assignable_activities: vec![act("B0570"), act("B0420")],
        }];
        let at = ods("RX1");
        let ok = |g: &[RaGrant], acts: &[ActivityCode]| {
            authorize_position(g, &at, &national, &role, acts, &prescribing).map(|_| ())
        };
        assert!(ok(&sponsor, &[act("B0570")]).is_ok());
        assert!(ok(&sponsor, &[]).is_ok());
        assert!(matches!(
            ok(&sponsor, &[act("B0068")]),
            Err(RaScopeError::SponsorMayNotAssignActivity { .. })
        ));
        // Even a Sponsor somebody listed B0420 for does not grant a prescribing activity.
        assert!(matches!(
            ok(&sponsor, &[act("B0570"), act("B0420")]),
            Err(RaScopeError::PrescribingActivityNotPermitted { .. })
        ));
        let agent = [grant(RaAgent, "RX1")];
        assert!(ok(&agent, &[act("B0420"), act("B0068")]).is_ok());
        let elsewhere = [grant(RaAgent, "RY2")];
        assert!(matches!(
            ok(&elsewhere, &[]),
            Err(RaScopeError::OutsideOrganisation { .. })
        ));
        let lsa = [grant(LocalSmartcardAdministrator, "RX1")];
        assert!(matches!(
            ok(&lsa, &[]),
            Err(RaScopeError::RoleNotPermitted { .. })
        ));
    }

    #[test]
    fn nobody_acts_on_their_own_record() {
        assert_eq!(
            not_own_record("555000000001", "555000000001", IssueCard),
            Err(RaScopeError::OwnRecord { action: IssueCard })
        );
        assert!(not_own_record("555000000001", "555000000002", IssueCard).is_ok());
    }

    #[test]
    fn scope_is_the_ras_own_organisation_or_national() {
        let national = ods("X26");
        let g = [grant(RaAgent, "RX1")];
        assert!(authorize(&g, IssueCard, &ods("RX1"), &national, None).is_ok());
        assert_eq!(
            authorize(&g, IssueCard, &ods("RY2"), &national, None),
            Err(RaScopeError::OutsideOrganisation {
                action: IssueCard,
                organisation: ods("RY2")
            })
        );
        let n = [grant(RaManager, "X26")];
        assert!(authorize(&n, IssueCard, &ods("RY2"), &national, None).is_ok());
    }

    #[test]
    fn lsa_may_unlock_but_not_issue() {
        let national = ods("X26");
        let g = [grant(LocalSmartcardAdministrator, "RX1")];
        assert!(authorize(&g, UnlockCard, &ods("RX1"), &national, None).is_ok());
        assert_eq!(
            authorize(&g, IssueCard, &ods("RX1"), &national, None),
            Err(RaScopeError::RoleNotPermitted { action: IssueCard })
        );
    }

    #[test]
    fn sponsor_assigns_only_sponsored_roles() {
        let national = ods("X26");
        let allowed: RoleCode = "S8000:G8000:R8000".parse().expect("role");
        let other: RoleCode = "S8000:G8000:R8001".parse().expect("role");
        let g = [RaGrant {
            role: Sponsor,
            organisation: ods("RX1"),
            assignable_roles: vec![allowed.clone()],
            assignable_activities: vec![],
        }];
        assert!(authorize(&g, AssignPosition, &ods("RX1"), &national, Some(&allowed)).is_ok());
        assert!(matches!(
            authorize(&g, AssignPosition, &ods("RX1"), &national, Some(&other)),
            Err(RaScopeError::SponsorMayNotAssign { .. })
        ));
    }

    #[test]
    fn role_names_parse() {
        assert_eq!("RAM".parse::<RaRole>(), Ok(RaManager));
        assert_eq!(
            "local smartcard administrator".parse::<RaRole>(),
            Ok(LocalSmartcardAdministrator)
        );
        assert_eq!("sm".parse::<RaRole>(), Ok(ServiceManager));
        assert_eq!("Service Manager".parse::<RaRole>(), Ok(ServiceManager));
        assert_eq!(ServiceManager.title(), "Service Manager");
        for role in RaRole::ALL {
            assert_eq!(role.as_str().parse::<RaRole>(), Ok(role));
        }
        assert!("admin".parse::<RaRole>().is_err());
    }

    #[test]
    fn position_request_states_round_trip() {
        for s in [
            PositionRequestState::Pending,
            PositionRequestState::Approved,
            PositionRequestState::Declined,
        ] {
            assert_eq!(s.as_str().parse::<PositionRequestState>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(
                serde_json::to_string(&s).ok(),
                Some(format!("\"{}\"", s.as_str()))
            );
        }
        assert!("expired".parse::<PositionRequestState>().is_err());
        assert!("Pending".parse::<PositionRequestState>().is_err());
    }
}
