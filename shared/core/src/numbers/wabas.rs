//! The WABAs of the numbers registry: numbers of one WhatsApp Business Account share its
//! templates, so the template tools (`templates status | plan | apply | history`, `report
//! health`) work per WABA, picked by `--waba` (a WABA id, or the label of one of its numbers).

use serde::Serialize;

use super::Numbers;

/// One WABA of the registry: its id and the labels of its numbers, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waba {
    pub id: String,
    pub numbers: Vec<String>,
}

impl std::fmt::Display for Waba {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.id, self.numbers.join(", "))
    }
}

impl Numbers {
    /// Every WABA, in the order its first number appears in the file.
    pub fn wabas(&self) -> Vec<Waba> {
        let mut out: Vec<Waba> = Vec::new();
        for n in self.all() {
            match out.iter_mut().find(|w| w.id == n.waba_id) {
                Some(w) => w.numbers.push(n.label.clone()),
                None => out.push(Waba {
                    id: n.waba_id.clone(),
                    numbers: vec![n.label.clone()],
                }),
            }
        }
        out
    }

    /// The WABA `id_or_label` names: its id, or the label (or phone_number_id) of one of its
    /// numbers. The refusal lists the WABAs there are.
    pub fn waba(&self, id_or_label: &str) -> Result<Waba, String> {
        let id = match self.find(id_or_label) {
            Some(n) => n.waba_id.as_str(),
            None => id_or_label,
        };
        self.wabas()
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| {
                format!(
                    "{id_or_label:?} is neither a WABA id nor a number of the registry (WABAs: {})",
                    self.known()
                )
            })
    }

    /// The one WABA a command works on: the one `waba` names, else the registry's only WABA.
    /// With several and none named, the refusal lists them.
    pub fn one_waba(&self, waba: Option<&str>) -> Result<Waba, String> {
        match (waba, self.wabas().as_slice()) {
            (Some(w), _) => self.waba(w),
            (None, [only]) => Ok(only.clone()),
            (None, _) => Err(format!(
                "required: the numbers registry has several WABAs, each with its own templates \
                 (WABAs: {})",
                self.known()
            )),
        }
    }

    fn known(&self) -> String {
        let wabas: Vec<String> = self.wabas().iter().map(Waba::to_string).collect();
        wabas.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers() -> Numbers {
        let entry = |label: &str, id: &str, waba: &str| {
            format!(
                "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"{waba}\"\n\
                 display_number = \"+52 55 5000 {}\"\ntoken_key = \"TOKEN_{}\"\n[number.crm]\nkind = \"local\"\n",
                &id[..4],
                &id[..4]
            )
        };
        let text = entry("ventas-mx", "1065", "111")
            + &entry("ventas-br", "2065", "222")
            + &entry("soporte-mx", "3065", "111");
        Numbers::parse("numbers.toml", text.as_bytes()).unwrap()
    }

    #[test]
    fn wabas_group_their_numbers_in_file_order() {
        let n = numbers();
        let got: Vec<String> = n.wabas().iter().map(Waba::to_string).collect();
        assert_eq!(got, ["111 (ventas-mx, soporte-mx)", "222 (ventas-br)"]);
        assert_eq!(n.waba("soporte-mx").unwrap().id, "111");
        assert_eq!(n.waba("2065").unwrap().id, "222");
        assert_eq!(n.waba("222").unwrap().numbers, ["ventas-br"]);
    }

    /// An unknown WABA, or none of several, is refused naming the WABAs there are.
    #[test]
    fn unknown_or_missing_wabas_list_the_known_ones() {
        let n = numbers();
        let err = n.waba("ventas-ar").unwrap_err();
        assert!(err.contains("\"ventas-ar\""), "{err}");
        assert!(
            err.contains("111 (ventas-mx, soporte-mx); 222 (ventas-br)"),
            "{err}"
        );
        let err = n.one_waba(None).unwrap_err();
        assert!(
            err.contains("several WABAs") && err.contains("222 (ventas-br)"),
            "{err}"
        );
        assert_eq!(n.one_waba(Some("ventas-br")).unwrap().id, "222");
        let one = Numbers::parse(
            "n.toml",
            b"[[number]]\nlabel = \"a\"\nphone_number_id = \"1065\"\nwaba_id = \"111\"\n\
              display_number = \"+52 55 5000 1065\"\ntoken_key = \"T\"\n[number.crm]\nkind = \"local\"\n",
        )
        .unwrap();
        assert_eq!(one.one_waba(None).unwrap().id, "111");
    }
}
