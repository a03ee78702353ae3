//! What the phone shows before it signs a prescription.
//!
//! [`summarize_fragments`] reads the `FragmentsToBeHashed` document alone:
//! the very bytes whose digest the phone signs. Everything in that summary is
//! therefore covered by the signature. [`summarize_prescription`] gives the
//! same summary for a whole prescription (it builds the fragments first) and
//! adds the short-form prescription id, which is *not* signed.
//!
//! The summary holds every signed field a dispenser acts on:
//! * the prescription id: `id/@root` of the first fragment (the
//!   `pertinentPrescription`'s first id); the signing time: `time/@value`;
//! * the prescriber: the `AgentPerson` fragment — its `id` (SDS role profile
//!   id), `code` (job role code), `agentPerson/id` (SDS user id, root
//!   `1.2.826.0.1285.0.2.0.65`, or professional code, root
//!   `1.2.826.0.1285.0.2.1.54`), `agentPerson/name` and
//!   `representedOrganization` (name and ODS code);
//! * the patient: the `recordTarget` fragment — `Patient/id` with root
//!   `2.16.840.1.113883.2.1.4.1` (NHS number), `patientPerson/name`, date of
//!   birth, sex and address; and any other NHS number anywhere in the
//!   signed fragments;
//! * one fragment per line item: the medication's dm+d `code` and its
//!   `displayName` (`product/manufacturedProduct/manufacturedRequestedMaterial/
//!   code`), every dosage instruction, the quantity and unit, the number of
//!   issues (`repeatNumber/high`; EPS leaves `repeatNumber/low` out of the
//!   signed fragments, so it is not shown), additional instructions and
//!   prescriber endorsements.
//!
//! Before anything is read, the fragments document is checked: EPS's fragment
//! structure, only `urn:hl7-org:v3` elements inside the fragments, and no
//! repeated single-valued element (see [`crate::fragments`]) — otherwise a
//! decoy element could be what is shown while a dispenser acts on another.
//! Where a field may repeat (dosage instructions, endorsements, name parts,
//! address lines), every value is shown.

use roxmltree::Node;
use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::fragments::{self, FragmentsError, child, children, is_hl7};
use crate::xml::{self, XmlError};

/// OID of NHS numbers.
pub const NHS_NUMBER_ROOT: &str = "2.16.840.1.113883.2.1.4.1";
/// OID of SDS user ids.
pub const SDS_USER_ID_ROOT: &str = "1.2.826.0.1285.0.2.0.65";
/// OID of SDS role profile ids.
pub const SDS_ROLE_PROFILE_ID_ROOT: &str = "1.2.826.0.1285.0.2.0.67";
/// OID of prescribers' professional codes (GMC, NMC, GPhC, HCPC, …).
pub const PROFESSIONAL_CODE_ROOT: &str = "1.2.826.0.1285.0.2.1.54";

/// Errors summarising a prescription.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The input is not well-formed XML, or nests too deep.
    #[error("XML parse error: {0}")]
    Xml(#[from] XmlError),
    /// The prescription lacks something its fragments need, or holds a
    /// decoy (a repeated single element, a foreign-namespace element).
    #[error(transparent)]
    Prescription(#[from] FragmentsError),
    /// The fragments document does not have EPS's structure (time and id;
    /// prescriber; patient; at least one line item).
    #[error("not an EPS fragments document: {0}")]
    Structure(String),
    /// A required part is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field the screen shows one of has two values (e.g. two NHS numbers
    /// for the patient).
    #[error("ambiguous {0}: the prescription is refused")]
    Ambiguous(&'static str),
}

/// A prescription as the prescriber is shown it before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrescriptionSummary {
    /// The prescription's long-form id (`pertinentPrescription/id[0]/@root`),
    /// a signed fragment.
    pub prescription_id: String,
    /// The short-form prescription id (`id[1]/@extension`). Not signed, and
    /// only available from a whole prescription.
    pub short_form_id: Option<String>,
    /// `author/time/@value` (HL7 `YYYYMMDDhhmmss`, no zone).
    pub author_time: String,
    /// The patient.
    pub patient: PatientSummary,
    /// The prescriber (the author).
    pub prescriber: PrescriberSummary,
    /// The line items, in order (at least one).
    pub items: Vec<LineItemSummary>,
    /// NHS numbers in the signed fragments other than the patient's
    /// (`id`s with the NHS number root anywhere else), as written.
    #[serde(default)]
    pub other_nhs_numbers: Vec<String>,
}

/// The patient of a prescription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientSummary {
    /// Prefix, given names and family name, space-separated.
    pub name: String,
    /// The NHS number (ten digits, as written).
    pub nhs_number: String,
    /// Date of birth (`patientPerson/birthTime/@value`, HL7 `YYYYMMDD`).
    #[serde(default)]
    pub birth_time: Option<String>,
    /// Sex (`administrativeGenderCode/@code`: 1 male, 2 female, 9 not
    /// specified, 0 not known).
    #[serde(default)]
    pub sex_code: Option<String>,
    /// The address (`Patient/addr`): lines and postcode, comma-separated.
    #[serde(default)]
    pub address: Option<String>,
}

/// The prescriber of a prescription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrescriberSummary {
    /// Prefix, given names and family name, if present.
    pub name: Option<String>,
    /// The SDS user id (`agentPerson/id` with the SDS user id root), if
    /// present.
    pub sds_user_id: Option<String>,
    /// The professional code (`agentPerson/id` with the professional code
    /// root), if present.
    pub professional_code: Option<String>,
    /// The SDS role profile id (`AgentPerson/id/@extension`), if present.
    pub sds_role_profile_id: Option<String>,
    /// The job role code (`AgentPerson/code/@code`), if present.
    pub role_code: Option<String>,
    /// The organisation the prescriber acts for, if present.
    pub organisation: Option<OrganisationSummary>,
}

/// An organisation (name and ODS code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganisationSummary {
    /// The organisation's name, if present.
    pub name: Option<String>,
    /// The ODS code (`id/@extension`), if present.
    pub ods_code: Option<String>,
}

/// One line item (medication) of a prescription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LineItemSummary {
    /// The medication's name (`code/@displayName`; the code itself if there
    /// is no display name).
    pub medication: String,
    /// The medication's dm+d code (`code/@code`), what a dispenser
    /// dispenses against.
    #[serde(default)]
    pub code: Option<String>,
    /// The dosage instructions (several are joined with `"; "`), if present.
    pub dose: Option<String>,
    /// The quantity with its unit (e.g. `"100 tablet"`), if present.
    pub quantity: Option<String>,
    /// The number of issues authorised (`repeatNumber/high/@value`), if
    /// present.
    #[serde(default)]
    pub repeat_issues: Option<String>,
    /// Additional instructions (`pertinentAdditionalInstructions/value`),
    /// if present.
    #[serde(default)]
    pub additional_instructions: Option<String>,
    /// Prescriber endorsements (`pertinentPrescriberEndorsement/value`:
    /// code, display name and text), in order.
    #[serde(default)]
    pub endorsements: Vec<String>,
}

/// Summarise a `FragmentsToBeHashed` document (canonical or not): what the
/// phone derives from the bytes it signs. The fragments must be in EPS's
/// order — `{time, id}`, `AgentPerson`, `recordTarget`, then one or more
/// `pertinentLineItem`s — made only of `urn:hl7-org:v3` elements with no
/// repeated single-valued element, or this fails before reading any field.
pub fn summarize_fragments(fragments_xml: &str) -> Result<PrescriptionSummary, SummaryError> {
    let doc = xml::parse(fragments_xml)?;
    let root = doc.root_element();
    if root.tag_name().name() != "FragmentsToBeHashed" || fragments::namespace_of(root).is_some() {
        return Err(SummaryError::Structure(format!(
            "root element is {:?}",
            root.tag_name().name()
        )));
    }
    let fragments: Vec<Node<'_, '_>> = root.children().filter(Node::is_element).collect();
    if let Some(other) = fragments
        .iter()
        .find(|f| f.tag_name().name() != "Fragment" || fragments::namespace_of(**f).is_some())
    {
        return Err(SummaryError::Structure(format!(
            "unexpected element {:?}",
            other.tag_name().name()
        )));
    }
    let expect = |index: usize, names: &[&str], what: &str| {
        let found = fragments
            .get(index)
            .map(|f| expected_children(*f, names))
            .unwrap_or_default();
        found.ok_or_else(|| {
            SummaryError::Structure(format!(
                "expected {what} ({}) in fragment {}",
                names.join(", "),
                index + 1
            ))
        })
    };
    let first = expect(0, &["time", "id"], "signing time and prescription id")?;
    let agent = expect(1, &["AgentPerson"], "the prescriber")?;
    let record_target = expect(2, &["recordTarget"], "the patient")?;
    let mut item_nodes = Vec::new();
    for index in 3..fragments.len() {
        item_nodes.push(expect(index, &["pertinentLineItem"], "a line item")?[0]);
    }
    // Every element of every fragment: HL7 only, no repeated singleton.
    for part in first
        .iter()
        .chain(&agent)
        .chain(&record_target)
        .chain(&item_nodes)
    {
        fragments::check_fragment_subtree(*part)?;
    }
    if item_nodes.is_empty() {
        return Err(SummaryError::Missing(
            "line items (no pertinentLineItem fragment)",
        ));
    }
    let items = item_nodes
        .iter()
        .map(|item| line_item(*item))
        .collect::<Result<Vec<_>, _>>()?;
    let patient_id = patient_nhs_id(record_target[0])?;
    let other_nhs_numbers = fragments
        .iter()
        .flat_map(|f| f.descendants())
        .filter(|n| is_hl7(*n, "id") && n.attribute("root") == Some(NHS_NUMBER_ROOT))
        .filter(|n| *n != patient_id)
        .map(|n| n.attribute("extension").unwrap_or("(no number)").to_owned())
        .collect();
    Ok(PrescriptionSummary {
        prescription_id: first[1]
            .attribute("root")
            .ok_or(SummaryError::Missing("prescription id/@root"))?
            .to_owned(),
        short_form_id: None,
        author_time: first[0]
            .attribute("value")
            .ok_or(SummaryError::Missing("author time/@value"))?
            .to_owned(),
        patient: patient(record_target[0], patient_id)?,
        prescriber: prescriber(agent[0])?,
        items,
        other_nhs_numbers,
    })
}

/// The element children of `fragment` when they are exactly `names` (HL7
/// elements, in that order).
fn expected_children<'a, 'i>(fragment: Node<'a, 'i>, names: &[&str]) -> Option<Vec<Node<'a, 'i>>> {
    let found: Vec<Node<'a, 'i>> = fragment.children().filter(Node::is_element).collect();
    (found.len() == names.len() && found.iter().zip(names).all(|(n, name)| is_hl7(*n, name)))
        .then_some(found)
}

/// Summarise a whole prescription document (a `ParentPrescription`, alone or
/// inside a message): the summary of its fragments plus the short-form id.
pub fn summarize_prescription(xml: &str) -> Result<PrescriptionSummary, SummaryError> {
    let doc = xml::parse(xml)?;
    let parent = fragments::find_parent_prescription(&doc)?;
    let mut summary = summarize_fragments(&fragments::fragments_xml(parent)?)?;
    let prescription = fragments::pertinent_prescription(parent)?;
    summary.short_form_id = children(prescription, "id")
        .nth(1)
        .and_then(|id| id.attribute("extension"))
        .map(str::to_owned);
    Ok(summary)
}

/// The trimmed text of an element, if any.
fn text(node: Node<'_, '_>) -> Option<String> {
    let joined: String = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|t| t.text())
        .collect();
    let collapsed = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    (!collapsed.is_empty()).then_some(collapsed)
}

/// A person's name: prefix, given names, family name and suffix, in that
/// order; or the name's text when it has no parts.
fn person_name(person: Node<'_, '_>) -> Option<String> {
    let name = child(person, "name")?;
    let mut parts = Vec::new();
    for part in ["prefix", "given", "family", "suffix"] {
        parts.extend(children(name, part).filter_map(text));
    }
    if parts.is_empty() {
        text(name)
    } else {
        Some(parts.join(" "))
    }
}

/// The patient's NHS number `id` (exactly one).
fn patient_nhs_id<'a, 'i>(record_target: Node<'a, 'i>) -> Result<Node<'a, 'i>, SummaryError> {
    let patient =
        child(record_target, "Patient").ok_or(SummaryError::Missing("recordTarget/Patient"))?;
    let mut ids =
        children(patient, "id").filter(|id| id.attribute("root") == Some(NHS_NUMBER_ROOT));
    let id = ids
        .next()
        .ok_or(SummaryError::Missing("the patient's NHS number"))?;
    if ids.next().is_some() {
        return Err(SummaryError::Ambiguous(
            "the patient's NHS number (two are given)",
        ));
    }
    Ok(id)
}

fn patient(
    record_target: Node<'_, '_>,
    nhs_id: Node<'_, '_>,
) -> Result<PatientSummary, SummaryError> {
    let patient =
        child(record_target, "Patient").ok_or(SummaryError::Missing("recordTarget/Patient"))?;
    let nhs_number = nhs_id
        .attribute("extension")
        .ok_or(SummaryError::Missing("the patient's NHS number"))?
        .to_owned();
    let person = child(patient, "patientPerson");
    let name = person
        .and_then(person_name)
        .ok_or(SummaryError::Missing("the patient's name"))?;
    let addresses: Vec<String> = children(patient, "addr").filter_map(address).collect();
    Ok(PatientSummary {
        name,
        nhs_number,
        birth_time: person
            .and_then(|p| child(p, "birthTime"))
            .and_then(|b| b.attribute("value"))
            .map(str::to_owned),
        sex_code: person
            .and_then(|p| child(p, "administrativeGenderCode"))
            .and_then(|g| g.attribute("code"))
            .map(str::to_owned),
        address: (!addresses.is_empty()).then(|| addresses.join("; ")),
    })
}

/// An address: its parts' texts in document order, comma-separated.
fn address(addr: Node<'_, '_>) -> Option<String> {
    let parts: Vec<String> = addr
        .children()
        .filter(Node::is_element)
        .filter_map(text)
        .collect();
    if parts.is_empty() {
        text(addr)
    } else {
        Some(parts.join(", "))
    }
}

fn prescriber(agent: Node<'_, '_>) -> Result<PrescriberSummary, SummaryError> {
    let person = child(agent, "agentPerson");
    let person_id = |root: &str, what: &'static str| -> Result<Option<String>, SummaryError> {
        let mut ids = person
            .into_iter()
            .flat_map(|p| children(p, "id"))
            .filter(|id| id.attribute("root") == Some(root));
        let first = ids.next();
        if ids.next().is_some() {
            return Err(SummaryError::Ambiguous(what));
        }
        Ok(first
            .and_then(|id| id.attribute("extension"))
            .map(str::to_owned))
    };
    let organisation = child(agent, "representedOrganization").map(|org| OrganisationSummary {
        name: child(org, "name").and_then(text),
        ods_code: child(org, "id")
            .and_then(|id| id.attribute("extension"))
            .map(str::to_owned),
    });
    Ok(PrescriberSummary {
        name: person.and_then(person_name),
        sds_user_id: person_id(
            SDS_USER_ID_ROOT,
            "the prescriber's SDS user id (two are given)",
        )?,
        professional_code: person_id(
            PROFESSIONAL_CODE_ROOT,
            "the prescriber's professional code (two are given)",
        )?,
        sds_role_profile_id: child(agent, "id")
            .and_then(|id| id.attribute("extension"))
            .map(str::to_owned),
        role_code: child(agent, "code")
            .and_then(|code| code.attribute("code"))
            .map(str::to_owned),
        organisation,
    })
}

/// A coded or text `value`: its text, display name and code, as present.
fn coded_value(value: Node<'_, '_>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(t) = text(value) {
        parts.push(t);
    }
    if let Some(name) = value
        .attribute("displayName")
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        parts.push(name.to_owned());
    }
    if let Some(code) = value
        .attribute("code")
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        parts.push(if parts.is_empty() {
            code.to_owned()
        } else {
            format!("({code})")
        });
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn line_item(item: Node<'_, '_>) -> Result<LineItemSummary, SummaryError> {
    let code = child(item, "product")
        .and_then(|p| child(p, "manufacturedProduct"))
        .and_then(|p| child(p, "manufacturedRequestedMaterial"))
        .and_then(|m| child(m, "code"))
        .ok_or(SummaryError::Missing(
            "a line item's medication (product/…/code)",
        ))?;
    let dmd_code = code
        .attribute("code")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let medication = code
        .attribute("displayName")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| dmd_code.clone())
        .ok_or(SummaryError::Missing(
            "a line item's medication name or code",
        ))?;
    let doses: Vec<String> = children(item, "pertinentInformation2")
        .filter_map(|info| child(info, "pertinentDosageInstructions"))
        .filter_map(|d| child(d, "value"))
        .filter_map(text)
        .collect();
    let quantity = child(item, "component")
        .and_then(|c| child(c, "lineItemQuantity"))
        .and_then(|q| child(q, "quantity"))
        .and_then(quantity_text);
    let repeat_issues = child(item, "repeatNumber")
        .and_then(|r| child(r, "high"))
        .and_then(|h| h.attribute("value"))
        .map(|v| v.trim().to_owned());
    let additional_instructions = child(item, "pertinentInformation1")
        .and_then(|i| child(i, "pertinentAdditionalInstructions"))
        .and_then(|a| child(a, "value"))
        .and_then(text);
    let endorsements = children(item, "pertinentInformation3")
        .filter_map(|i| child(i, "pertinentPrescriberEndorsement"))
        .filter_map(|e| child(e, "value"))
        .filter_map(coded_value)
        .collect();
    Ok(LineItemSummary {
        medication,
        code: dmd_code,
        dose: (!doses.is_empty()).then(|| doses.join("; ")),
        quantity,
        repeat_issues,
        additional_instructions,
        endorsements,
    })
}

/// `quantity/@value` and its unit: the translation's display name, or the
/// UCUM unit when it is not the dimensionless `1`.
fn quantity_text(quantity: Node<'_, '_>) -> Option<String> {
    let value = quantity.attribute("value")?.trim();
    let unit = child(quantity, "translation")
        .and_then(|t| t.attribute("displayName"))
        .or_else(|| quantity.attribute("unit").filter(|u| *u != "1"))
        .map(str::trim)
        .filter(|u| !u.is_empty());
    Some(match unit {
        Some(unit) => format!("{value} {unit}"),
        None => value.to_owned(),
    })
}

/// An NHS number as people write it (`999 054 8609`), or as given when it
/// is not ten digits.
fn spaced_nhs_number(number: &str) -> String {
    if number.len() == 10 && number.bytes().all(|b| b.is_ascii_digit()) {
        format!("{} {} {}", &number[..3], &number[3..6], &number[6..])
    } else {
        number.to_owned()
    }
}

/// An HL7 date (`YYYYMMDD…`) as `YYYY-MM-DD`, or as given.
fn hl7_date(value: &str) -> String {
    match parse_hl7_time(value) {
        Some(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        None => value.to_owned(),
    }
}

fn sex(code: &str) -> String {
    match code {
        "1" => "male".to_owned(),
        "2" => "female".to_owned(),
        "9" => "sex not specified".to_owned(),
        "0" => "sex not known".to_owned(),
        other => format!("sex code {other}"),
    }
}

impl PrescriptionSummary {
    /// Human-readable lines for a screen, e.g.
    ///
    /// ```text
    /// Prescription 92DC91-A83008-4DCD88 (id 4A3D73FE-6013-4446-ADD3-909167DCFAC7)
    /// Written 2021-07-26 12:05:22
    /// Patient: MR DONOTUSE XXTESTPATIENT-TGNP, NHS 999 054 8609, born 1932-01-06, male
    /// Patient address: 1 Trevelyan Square, Boar Lane, Leeds, LS1 6AE
    /// Prescriber: DR C BOIN, HALLGARTH SURGERY (A83008); role R8000, role profile 200102238987, professional code 6095103
    /// 1. Paracetamol 500mg soluble tablets [dm+d 39720311000001101]
    ///    dose: One tablet to be taken four times a day
    ///    quantity: 100 tablet
    ///    issues authorised: 6
    ///    additional instructions: …
    ///    endorsement: SLS
    /// ```
    pub fn display_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        lines.push(match &self.short_form_id {
            Some(short) => format!("Prescription {short} (id {})", self.prescription_id),
            None => format!("Prescription {}", self.prescription_id),
        });
        lines.push(match parse_hl7_time(&self.author_time) {
            Some(t) => format!(
                "Written {:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            None => format!("Written {}", self.author_time),
        });
        let patient = &self.patient;
        let mut line = format!(
            "Patient: {}, NHS {}",
            patient.name,
            spaced_nhs_number(&patient.nhs_number)
        );
        if let Some(born) = &patient.birth_time {
            line.push_str(&format!(", born {}", hl7_date(born)));
        }
        if let Some(code) = &patient.sex_code {
            line.push_str(&format!(", {}", sex(code)));
        }
        lines.push(line);
        if let Some(address) = &patient.address {
            lines.push(format!("Patient address: {address}"));
        }
        if !self.other_nhs_numbers.is_empty() {
            lines.push(format!(
                "Other NHS numbers in the signed data: {}",
                self.other_nhs_numbers
                    .iter()
                    .map(|n| spaced_nhs_number(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let p = &self.prescriber;
        let mut who = p.name.clone().unwrap_or_else(|| "(no name)".to_owned());
        if let Some(org) = &p.organisation {
            match (&org.name, &org.ods_code) {
                (Some(name), Some(code)) => who.push_str(&format!(", {name} ({code})")),
                (Some(name), None) => who.push_str(&format!(", {name}")),
                (None, Some(code)) => who.push_str(&format!(", organisation {code}")),
                (None, None) => {}
            }
        }
        let ids: Vec<String> = [
            ("role", &p.role_code),
            ("role profile", &p.sds_role_profile_id),
            ("SDS user", &p.sds_user_id),
            ("professional code", &p.professional_code),
        ]
        .into_iter()
        .filter_map(|(label, value)| value.as_ref().map(|v| format!("{label} {v}")))
        .collect();
        if ids.is_empty() {
            lines.push(format!("Prescriber: {who}"));
        } else {
            lines.push(format!("Prescriber: {who}; {}", ids.join(", ")));
        }
        for (i, item) in self.items.iter().enumerate() {
            lines.extend(item.display_lines(i + 1));
        }
        lines
    }
}

impl LineItemSummary {
    /// The item's lines: name and dm+d code, then one indented line per
    /// field present.
    pub fn display_lines(&self, number: usize) -> Vec<String> {
        let mut lines = vec![match &self.code {
            Some(code) if *code != self.medication => {
                format!("{number}. {} [dm+d {code}]", self.medication)
            }
            Some(code) => format!("{number}. [dm+d {code}] (no name given)"),
            None => format!("{number}. {} [no dm+d code]", self.medication),
        }];
        let mut field = |label: &str, value: &Option<String>| {
            if let Some(value) = value {
                lines.push(format!("   {label}: {value}"));
            }
        };
        field("dose", &self.dose);
        field("quantity", &self.quantity);
        field("issues authorised", &self.repeat_issues);
        field("additional instructions", &self.additional_instructions);
        for endorsement in &self.endorsements {
            lines.push(format!("   endorsement: {endorsement}"));
        }
        lines
    }
}

/// Parse an HL7 `TS` value (`YYYYMMDD[hh[mm[ss]]]`, no zone: taken as UTC).
pub fn parse_hl7_time(value: &str) -> Option<OffsetDateTime> {
    let digits = value.get(
        ..value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    )?;
    if digits.len() < 8 || digits.len() % 2 != 0 || digits.len() > 14 {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<u32> {
        digits.get(range).map_or(Some(0), |s| s.parse().ok())
    };
    let year = i32::try_from(field(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(field(4..6)?).ok()?).ok()?;
    let day = u8::try_from(field(6..8)?).ok()?;
    let hour = u8::try_from(field(8..10)?).ok()?;
    let minute = u8::try_from(field(10..12)?).ok()?;
    let second = u8::try_from(field(12..14)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENTS: &str = concat!(
        "<FragmentsToBeHashed>",
        "<Fragment><time xmlns=\"urn:hl7-org:v3\" value=\"20210726120522\"></time>",
        "<id xmlns=\"urn:hl7-org:v3\" root=\"P-1\"></id></Fragment>",
        "<Fragment><AgentPerson xmlns=\"urn:hl7-org:v3\"><id root=\"1.2.826.0.1285.0.2.0.67\" extension=\"R1\"></id>",
        "<agentPerson><id root=\"1.2.826.0.1285.0.2.0.65\" extension=\"U1\"></id></agentPerson></AgentPerson></Fragment>",
        "<Fragment><recordTarget xmlns=\"urn:hl7-org:v3\"><Patient><id root=\"2.16.840.1.113883.2.1.4.1\" extension=\"9990548609\"></id>",
        "<patientPerson><name>Zoë &amp; Co</name></patientPerson></Patient></recordTarget></Fragment>",
        "ITEMS",
        "</FragmentsToBeHashed>"
    );
    const ITEM: &str = concat!(
        "<Fragment><pertinentLineItem xmlns=\"urn:hl7-org:v3\"><product><manufacturedProduct><manufacturedRequestedMaterial>",
        "<code code=\"123\"></code></manufacturedRequestedMaterial></manufacturedProduct></product>",
        "<component><lineItemQuantity><quantity value=\"5\" unit=\"mL\"></quantity></lineItemQuantity></component>",
        "</pertinentLineItem></Fragment>"
    );

    #[test]
    fn minimal_fragments() {
        let summary = summarize_fragments(&FRAGMENTS.replace("ITEMS", ITEM)).expect("summary");
        assert_eq!(summary.prescription_id, "P-1");
        assert_eq!(summary.patient.name, "Zoë & Co");
        assert_eq!(summary.prescriber.sds_user_id.as_deref(), Some("U1"));
        assert_eq!(summary.prescriber.name, None);
        assert_eq!(summary.prescriber.organisation, None);
        assert_eq!(
            summary.items,
            vec![LineItemSummary {
                medication: "123".to_owned(),
                code: Some("123".to_owned()),
                quantity: Some("5 mL".to_owned()),
                ..LineItemSummary::default()
            }]
        );
        assert_eq!(
            summary.display_lines(),
            vec![
                "Prescription P-1",
                "Written 2021-07-26 12:05:22",
                "Patient: Zoë & Co, NHS 999 054 8609",
                "Prescriber: (no name); role profile R1, SDS user U1",
                "1. [dm+d 123] (no name given)",
                "   quantity: 5 mL",
            ]
        );
    }

    #[test]
    fn structure_is_enforced() {
        assert!(matches!(
            summarize_fragments(&FRAGMENTS.replace("ITEMS", "")),
            Err(SummaryError::Missing(_))
        ));
        let no_patient = FRAGMENTS
            .replace("ITEMS", ITEM)
            .replace("recordTarget", "other");
        assert!(matches!(
            summarize_fragments(&no_patient),
            Err(SummaryError::Structure(_))
        ));
        let extra = FRAGMENTS.replace("ITEMS", &format!("{ITEM}<Fragment><x/></Fragment>"));
        assert!(matches!(
            summarize_fragments(&extra),
            Err(SummaryError::Structure(_))
        ));
        assert!(matches!(
            summarize_fragments("<ParentPrescription/>"),
            Err(SummaryError::Structure(_))
        ));
    }

    #[test]
    fn decoys_in_fragments_are_refused() {
        let honest = FRAGMENTS.replace("ITEMS", ITEM);
        // A second code before the real one (what a foreign-namespace decoy
        // becomes once EPS copies it into the HL7 namespace).
        let two_codes = honest.replace(
            "<code code=\"123\"></code>",
            "<code code=\"999\" displayName=\"Decoy\"></code><code code=\"123\"></code>",
        );
        assert!(matches!(
            summarize_fragments(&two_codes),
            Err(SummaryError::Prescription(FragmentsError::Duplicate { ref name, .. })) if name == "code"
        ));
        // A foreign-namespace element inside a fragment.
        let foreign = honest.replace(
            "<code code=\"123\"></code>",
            "<x:code xmlns:x=\"urn:evil\" code=\"999\"></x:code><code code=\"123\"></code>",
        );
        assert!(matches!(
            summarize_fragments(&foreign),
            Err(SummaryError::Prescription(
                FragmentsError::ForeignElement { .. }
            ))
        ));
        // A no-namespace element inside a fragment.
        let bare = honest.replace(
            "<patientPerson>",
            "<patientPerson><name xmlns=\"\">Decoy</name>",
        );
        assert!(matches!(
            summarize_fragments(&bare),
            Err(SummaryError::Prescription(
                FragmentsError::ForeignElement { .. }
            ))
        ));
        // Two NHS numbers for the patient.
        let two_numbers = honest.replace(
            "<patientPerson>",
            "<id root=\"2.16.840.1.113883.2.1.4.1\" extension=\"9449305552\"></id><patientPerson>",
        );
        assert!(matches!(
            summarize_fragments(&two_numbers),
            Err(SummaryError::Ambiguous(_))
        ));
        // Too deep.
        let deep = honest.replace(
            "<patientPerson>",
            &format!("{}<patientPerson>", crate::xml::nested("x", 40_000)),
        );
        assert!(matches!(
            summarize_fragments(&deep),
            Err(SummaryError::Xml(XmlError::TooDeep))
        ));
    }
}
