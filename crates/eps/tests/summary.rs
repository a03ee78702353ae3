//! Prescription summaries (what the phone shows) from corpus prescriptions
//! and from the NHS fragments vector; decoys (a foreign-namespace element
//! before the real one, a second recordTarget, a second code) refused before
//! anything is shown.

mod common;

use common::{corpus, read};
use vsc_eps::fragments::FragmentsError;
use vsc_eps::sign::{self, SignatureAlgorithm};
use vsc_eps::summary::{
    LineItemSummary, OrganisationSummary, PatientSummary, PrescriberSummary, PrescriptionSummary,
    SummaryError, summarize_fragments, summarize_prescription,
};

fn item(medication: &str, code: &str, dose: &str, quantity: &str) -> LineItemSummary {
    LineItemSummary {
        medication: medication.to_owned(),
        code: Some(code.to_owned()),
        dose: Some(dose.to_owned()),
        quantity: Some(quantity.to_owned()),
        ..LineItemSummary::default()
    }
}

const ADDITIONAL: &str = "<medication>Bendroflumethiazide 2.5mg tablets (3/6)</medication><medication>Salbutamol 100micrograms/dose inhaler CFC free (2/6)</medication><patientInfo>Due to Coronavirus restrictions Church View Surgery is CLOSED until further notice</patientInfo>";

#[test]
fn primary_care_acute_and_repeat() {
    let summary = summarize_prescription(&read(
        "corpus/primary-care__acute-and-repeat-prescribing.xml",
    ))
    .expect("summary");
    assert_eq!(
        summary,
        PrescriptionSummary {
            prescription_id: "9CABF097-2930-45B6-9DB5-B011C3E8182D".to_owned(),
            short_form_id: Some("E3E6FA-A83008-41F09Y".to_owned()),
            author_time: "20210512055849".to_owned(),
            patient: PatientSummary {
                name: "MR DONOTUSE XXTESTPATIENT-TGNP".to_owned(),
                nhs_number: "9990548609".to_owned(),
                birth_time: Some("19320106".to_owned()),
                sex_code: Some("1".to_owned()),
                address: Some(
                    "1 Trevelyan Square, Boar Lane, Leeds, West Yorkshire, LS1 6AE".to_owned()
                ),
            },
            prescriber: PrescriberSummary {
                name: Some("DR C BOIN".to_owned()),
                sds_user_id: None,
                professional_code: Some("6095103".to_owned()),
                sds_role_profile_id: Some("200102238987".to_owned()),
                role_code: Some("S8000:G8000:R8000".to_owned()),
                organisation: Some(OrganisationSummary {
                    name: Some("HALLGARTH SURGERY".to_owned()),
                    ods_code: Some("A83008".to_owned()),
                }),
            },
            items: vec![
                LineItemSummary {
                    additional_instructions: Some(ADDITIONAL.to_owned()),
                    ..item(
                        "Paracetamol 500mg soluble tablets",
                        "322237000",
                        "4 times a day - Oral",
                        "100 tablet"
                    )
                },
                item(
                    "Salbutamol 100micrograms/dose inhaler CFC free",
                    "39113611000001102",
                    "5 times a day - Inhalation",
                    "200 dose"
                ),
            ],
            other_nhs_numbers: vec![],
        }
    );
    assert_eq!(
        summary.display_lines(),
        [
            "Prescription E3E6FA-A83008-41F09Y (id 9CABF097-2930-45B6-9DB5-B011C3E8182D)",
            "Written 2021-05-12 05:58:49",
            "Patient: MR DONOTUSE XXTESTPATIENT-TGNP, NHS 999 054 8609, born 1932-01-06, male",
            "Patient address: 1 Trevelyan Square, Boar Lane, Leeds, West Yorkshire, LS1 6AE",
            "Prescriber: DR C BOIN, HALLGARTH SURGERY (A83008); role S8000:G8000:R8000, role profile 200102238987, professional code 6095103",
            "1. Paracetamol 500mg soluble tablets [dm+d 322237000]",
            "   dose: 4 times a day - Oral",
            "   quantity: 100 tablet",
            &format!("   additional instructions: {ADDITIONAL}"),
            "2. Salbutamol 100micrograms/dose inhaler CFC free [dm+d 39113611000001102]",
            "   dose: 5 times a day - Inhalation",
            "   quantity: 200 dose",
        ]
    );
    // JSON round trip.
    let json = serde_json::to_string(&summary).expect("json");
    let back: PrescriptionSummary = serde_json::from_str(&json).expect("from json");
    assert_eq!(back, summary);
    let value = serde_json::to_value(&summary).expect("json");
    assert_eq!(value["patient"]["nhs_number"], "9990548609");
    assert_eq!(value["items"][1]["quantity"], "200 dose");
}

#[test]
fn nurse_controlled_drugs_with_several_items_and_given_names() {
    let summary = summarize_prescription(&read(
        "corpus/secondary-care__community__acute__nominated-pharmacy__nurse__prescribing-and-professional-codes__controlled-drugs__additional-instructions.xml",
    ))
    .expect("summary");
    assert_eq!(summary.prescriber.name.as_deref(), Some("MR Random Userq"));
    assert_eq!(
        summary.prescriber.professional_code.as_deref(),
        Some("12A3456B")
    );
    assert_eq!(
        summary.prescriber.role_code.as_deref(),
        Some("S8001:G8001:R8001")
    );
    assert_eq!(
        summary.items,
        [
            LineItemSummary {
                additional_instructions: Some("<patientInfo>Your medication review is due. Please make an appointment to see your GP.</patientInfo>CD: twenty eight".to_owned()),
                ..item(
                    "Methotrexate 10mg/0.2ml solution for injection pre-filled syringes",
                    "15517911000001104",
                    "Inject 10 milligram - 5 times a day - Subcutaneous route - for 10 days",
                    "1 pre-filled disposable injection"
                )
            },
            item(
                "Morphine 10mg modified-release tablets",
                "36126511000001106",
                "1 tablet, daily",
                "28 tablet"
            ),
            LineItemSummary {
                additional_instructions: Some(
                    "Dosage has been decreased on advice from the hospital.".to_owned()
                ),
                ..item(
                    "Diazepam 2mg tablets",
                    "321196004",
                    "1 tablet, at NIGHT",
                    "28 tablet"
                )
            },
        ]
    );
    let lines = summary.display_lines();
    assert_eq!(
        lines[lines.len() - 4..],
        [
            "3. Diazepam 2mg tablets [dm+d 321196004]",
            "   dose: 1 tablet, at NIGHT",
            "   quantity: 28 tablet",
            "   additional instructions: Dosage has been decreased on advice from the hospital.",
        ]
    );

    let summary = summarize_prescription(&read("corpus/primary-care__repeat-prescribing.xml"))
        .expect("summary");
    assert_eq!(summary.patient.name, "MS STACEY MARISA TWITCHETT");
    assert_eq!(summary.items.len(), 4);
    assert_eq!(summary.items[3].medication, "Azithromycin 250mg capsules");
}

#[test]
fn consecutive_dosage_instructions_are_shown_whole() {
    let summary = summarize_prescription(&read(
        "corpus/secondary-care__homecare__acute__nominated-pharmacy__consecutive-dosage-instructions.xml",
    ))
    .expect("summary");
    let dose = summary.items[0].dose.as_deref().expect("dose");
    assert!(
        dose.starts_with("EIGHT (8) tablets to be taken DAILY"),
        "{dose}"
    );
    assert!(dose.ends_with(
        "TWO (2) tablets to be taken DAILY for two days. Take these tablets with or after food."
    ));
    assert_eq!(summary.items[0].quantity.as_deref(), Some("72 tablet"));
}

#[test]
fn the_nhs_fragments_vector_summarises_as_written_and_canonical() {
    let raw = read("PrepareIntermediate-Hl7V3SignatureFragments.xml");
    let canonical = read("PrepareIntermediate-Hl7V3SignatureFragmentsCanonicalized.txt");
    let summary = summarize_fragments(&raw).expect("raw");
    assert_eq!(
        summarize_fragments(canonical.trim_end()).expect("canonical"),
        summary
    );
    assert_eq!(summary.short_form_id, None);
    assert_eq!(summary.author_time, "20201218123434");
    assert_eq!(
        summary.prescription_id,
        "F5012E83-BD9E-4866-B453-86F75AEE2BD6"
    );
    assert_eq!(summary.patient.name, "MISS ETTA CORY");
    assert_eq!(summary.patient.nhs_number, "9449305552");
    assert_eq!(
        summary.prescriber.name.as_deref(),
        Some("DR Thomas Edwards")
    );
    assert_eq!(summary.items.len(), 4);
    assert_eq!(summary.items[0].quantity.as_deref(), Some("63 tablet"));
}

#[test]
fn every_corpus_prescription_summarises_from_its_fragments() {
    for (name, xml) in corpus() {
        let prepared = sign::prepare(&xml, SignatureAlgorithm::RsaSha256).expect("prepare");
        let from_fragments = summarize_fragments(&prepared.canonical_fragments).expect(&name);
        let whole = summarize_prescription(&xml).expect(&name);
        assert_eq!(
            from_fragments.prescription_id, prepared.prescription_id,
            "{name}"
        );
        assert_eq!(from_fragments.short_form_id, None);
        assert_eq!(
            PrescriptionSummary {
                short_form_id: None,
                ..whole.clone()
            },
            from_fragments,
            "{name}"
        );
        assert!(!whole.items.is_empty(), "{name}");
        assert!(
            whole
                .items
                .iter()
                .all(|i| i.dose.is_some() && i.quantity.is_some()),
            "{name}"
        );
        assert_eq!(whole.patient.nhs_number.len(), 10, "{name}");
        assert!(whole.items.iter().all(|i| i.code.is_some()), "{name}");
        let lines = whole.display_lines();
        assert!(lines[2].starts_with("Patient: "), "{name}");
        assert!(
            lines.iter().any(|l| l.starts_with("Prescriber: ")),
            "{name}"
        );
        // Each item's name next to its dm+d code.
        for (i, item) in whole.items.iter().enumerate() {
            let code = item.code.as_deref().expect("code");
            let heading = format!("{}. {} [dm+d {code}]", i + 1, item.medication);
            assert!(lines.contains(&heading), "{name}: {heading}\n{lines:#?}");
        }
    }
}

#[test]
fn repeats_and_endorsements_are_shown() {
    let summary = summarize_prescription(&read(
        "corpus/secondary-care__community__repeat-dispensing__nominated-pharmacy__clinical-practitioner__multiple-medication-requests__prescriber-endorsed.xml",
    ))
    .expect("summary");
    assert_eq!(summary.items[0].repeat_issues.as_deref(), Some("6"));
    assert_eq!(summary.items[0].endorsements, ["SLS"]);
    let lines = summary.display_lines();
    assert!(
        lines.contains(&"   issues authorised: 6".to_owned()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"   endorsement: SLS".to_owned()),
        "{lines:#?}"
    );
}

/// The first line item's medication `code` element, as written in the file.
fn first_medication_code(xml: &str) -> &str {
    let material = xml
        .find("<manufacturedRequestedMaterial")
        .expect("material");
    let start = xml[material..].find("<code ").expect("code") + material;
    let end = xml[start..].find("/>").expect("end") + start + 2;
    &xml[start..end]
}

#[test]
fn a_foreign_namespace_decoy_before_the_real_code_is_refused() {
    let xml = read("corpus/primary-care__acute-and-repeat-prescribing.xml");
    let real = first_medication_code(&xml).to_owned();
    let decoy = format!(
        "<x:code xmlns:x=\"urn:decoy\" code=\"39720311000001101\" codeSystem=\"2.16.840.1.113883.2.1.3.2.4.15\" displayName=\"Decoy 5mg tablets\"/>{real}"
    );
    let tampered = xml.replacen(&real, &decoy, 1);
    assert_ne!(tampered, xml);
    // The whole prescription: refused before anything is shown or prepared.
    let refused = summarize_prescription(&tampered).expect_err("a decoy must be refused");
    assert!(
        matches!(
            &refused,
            SummaryError::Prescription(FragmentsError::ForeignElement { name, namespace, .. })
                if name == "code" && namespace == "urn:decoy"
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("urn:decoy"), "{refused}");
    assert!(matches!(
        sign::prepare(&tampered, SignatureAlgorithm::RsaSha1),
        Err(sign::SignError::Prescription(
            FragmentsError::ForeignElement { .. }
        ))
    ));
    // The same decoy as EPS's copy turns it (into the HL7 namespace, before
    // the real one), sent to the phone as fragments: refused as well.
    let honest = sign::prepare(&xml, SignatureAlgorithm::RsaSha1).expect("prepare");
    let real_copied = {
        let c = &honest.canonical_fragments;
        let material = c.find("<manufacturedRequestedMaterial").expect("material");
        let start = c[material..].find("<code ").expect("code") + material;
        let end = c[start..].find("</code>").expect("end") + start + "</code>".len();
        c[start..end].to_owned()
    };
    let forged = honest.canonical_fragments.replacen(
        &real_copied,
        &format!("<code code=\"39720311000001101\" displayName=\"Decoy 5mg tablets\"></code>{real_copied}"),
        1,
    );
    assert!(matches!(
        summarize_fragments(&forged),
        Err(SummaryError::Prescription(FragmentsError::Duplicate { ref name, .. })) if name == "code"
    ));
}

#[test]
fn a_second_record_target_is_refused() {
    let xml = read("corpus/primary-care__acute-and-repeat-prescribing.xml");
    let start = xml.find("<recordTarget").expect("recordTarget");
    let end = xml.find("</recordTarget>").expect("end") + "</recordTarget>".len();
    let real = &xml[start..end];
    let decoy = real
        .replace("9990548609", "9449305552")
        .replace("DONOTUSE", "SOMEONE");
    let doubled = format!("{}{decoy}{}", &xml[..start], &xml[start..]);
    let refused = summarize_prescription(&doubled).expect_err("two patients must be refused");
    assert!(
        matches!(
            &refused,
            SummaryError::Prescription(FragmentsError::Duplicate { name, .. }) if name == "recordTarget"
        ),
        "{refused}"
    );
    // A no-namespace copy (xmlns="") before the real one: refused too.
    let bare = decoy.replacen("<recordTarget", "<recordTarget xmlns=\"\"", 1);
    let unnamespaced = format!("{}{bare}{}", &xml[..start], &xml[start..]);
    assert!(matches!(
        summarize_prescription(&unnamespaced),
        Err(SummaryError::Prescription(
            FragmentsError::ForeignElement { .. }
        ))
    ));
    // The phone, given fragments with two recordTargets in the patient fragment.
    let honest = sign::prepare(&xml, SignatureAlgorithm::RsaSha1).expect("prepare");
    let c = &honest.canonical_fragments;
    let rt_start = c.find("<recordTarget").expect("rt");
    let rt_end = c.find("</recordTarget>").expect("end") + "</recordTarget>".len();
    let forged = format!(
        "{}{}{}",
        &c[..rt_start],
        &c[rt_start..rt_end],
        &c[rt_start..]
    );
    assert!(matches!(
        summarize_fragments(&forged),
        Err(SummaryError::Structure(_) | SummaryError::Prescription(_))
    ));
}

#[test]
fn fragments_without_patient_or_items_are_refused() {
    let raw = read("PrepareIntermediate-Hl7V3SignatureFragments.xml");
    // Drop the recordTarget fragment.
    let start = raw.find("<recordTarget").expect("recordTarget");
    let end = raw.find("</recordTarget>").expect("end") + "</recordTarget>".len();
    let no_patient = format!("{}{}", &raw[..start], &raw[end..]);
    assert!(matches!(
        summarize_fragments(&no_patient),
        Err(SummaryError::Structure(_))
    ));
    // Drop every line item fragment.
    let first_item = raw
        .find("<Fragment>\n    <pertinentLineItem")
        .expect("item");
    let no_items = format!("{}</FragmentsToBeHashed>", &raw[..first_item]);
    assert!(matches!(
        summarize_fragments(&no_items),
        Err(SummaryError::Missing(_))
    ));
    // A prescription instead of a fragments document.
    assert!(matches!(
        summarize_fragments(&read("ValidSignature.xml")),
        Err(SummaryError::Structure(_))
    ));
    assert!(matches!(
        summarize_fragments("<oops"),
        Err(SummaryError::Xml(_))
    ));
    assert!(matches!(
        summarize_prescription("<a/>"),
        Err(SummaryError::Prescription(_))
    ));
}
