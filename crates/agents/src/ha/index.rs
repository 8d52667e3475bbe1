//! The live entity index (states + area/device/entity registries) and name resolution by
//! friendly name, alias and area, with fuzzy matching.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::route::action::Verb;

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub entity_id: String,
    pub name: String,
    pub state: String,
    pub attributes: Value,
}

impl Entity {
    pub fn domain(&self) -> &str {
        self.entity_id.split('.').next().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default)]
pub struct RegistryEntry {
    pub area_id: Option<String>,
    pub device_id: Option<String>,
    pub aliases: Vec<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Index {
    pub entities: BTreeMap<String, Entity>,
    /// area_id -> (name, aliases)
    pub areas: BTreeMap<String, (String, Vec<String>)>,
    /// device_id -> area_id
    pub device_area: HashMap<String, String>,
    pub registry: HashMap<String, RegistryEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    Entities(Vec<String>),
    Unknown {
        phrase: String,
    },
    Ambiguous {
        phrase: String,
        options: Vec<String>,
    },
}

/// Domains a verb can act on.
pub fn domains_for(verb: Verb) -> &'static [&'static str] {
    match verb {
        Verb::TurnOn | Verb::TurnOff | Verb::Toggle => &[
            "light",
            "switch",
            "fan",
            "input_boolean",
            "media_player",
            "humidifier",
            "climate",
        ],
        Verb::Open | Verb::Close => &["cover"],
        Verb::Lock | Verb::Unlock => &["lock"],
        Verb::SetLevel(_) => &["light", "cover", "fan"],
        Verb::SetTemperature(_) => &["climate"],
        Verb::Query => &[
            "light",
            "switch",
            "fan",
            "input_boolean",
            "media_player",
            "cover",
            "lock",
            "climate",
        ],
    }
}

/// Words that name a kind of device rather than a particular one, with the domain they mean.
fn generic_domain(word: &str) -> Option<&'static str> {
    Some(match word {
        "light" | "lamp" | "lighting" => "light",
        "switch" | "plug" => "switch",
        "fan" => "fan",
        "window" | "blind" | "curtain" | "shade" | "cover" | "shutter" => "cover",
        "lock" => "lock",
        "thermostat" | "heating" | "hvac" | "climate" => "climate",
        _ => return None,
    })
}

const FILLER: [&str; 10] = [
    "in",
    "of",
    "on",
    "at",
    "all",
    "every",
    "the",
    "everything",
    "and",
    "room's",
];

/// Lower case, punctuation to spaces, plural "s" dropped, filler words dropped.
pub fn tokens(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty() && !FILLER.contains(w))
        .map(singular)
        .collect()
}

fn singular(w: &str) -> String {
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w[..w.len() - 1].to_owned()
    } else {
        w.to_owned()
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbouring letters ("lihgts") each cost 1.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn word_match(a: &str, b: &str) -> f64 {
    if a == b {
        1.0
    } else if a.len() >= 4 && b.len() >= 4 && edit_distance(a, b) <= 1 {
        0.8
    } else {
        0.0
    }
}

/// Dice similarity of two token lists with fuzzy word matching (0..1).
pub fn similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let matched: f64 = a
        .iter()
        .map(|x| b.iter().map(|y| word_match(x, y)).fold(0.0, f64::max))
        .sum();
    (2.0 * matched / (a.len() + b.len()) as f64).min(1.0)
}

const DIRECT_THRESHOLD: f64 = 0.79;
const IN_AREA_THRESHOLD: f64 = 0.6;

impl Index {
    pub fn area_of(&self, entity_id: &str) -> Option<&str> {
        let reg = self.registry.get(entity_id)?;
        reg.area_id.as_deref().or_else(|| {
            reg.device_id
                .as_ref()
                .and_then(|d| self.device_area.get(d))
                .map(String::as_str)
        })
    }

    /// Names an entity answers to: its friendly name, registry name and aliases.
    pub fn names_of(&self, e: &Entity) -> Vec<String> {
        let mut names = vec![e.name.clone()];
        if let Some(reg) = self.registry.get(&e.entity_id) {
            names.extend(reg.aliases.iter().cloned());
            names.extend(reg.name.iter().cloned());
        }
        names
    }

    fn best_name_score(&self, e: &Entity, t: &[String]) -> f64 {
        self.names_of(e)
            .iter()
            .map(|n| similarity(t, &tokens(n)))
            .fold(0.0, f64::max)
    }

    /// Resolve "the kitchen lights and the bedside lamp": each part on its own, all or nothing
    /// (an unknown or ambiguous part is reported, nothing is acted on).
    pub fn resolve_all(&self, phrase: &str, verb: Verb) -> Resolution {
        let parts: Vec<&str> = phrase
            .split(" and ")
            .flat_map(|p| p.split(", "))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.len() < 2 {
            return self.resolve(phrase, verb);
        }
        let mut ids: Vec<String> = Vec::new();
        for part in parts {
            match self.resolve(part, verb) {
                Resolution::Entities(found) => {
                    for id in found {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                other => return other,
            }
        }
        Resolution::Entities(ids)
    }

    /// Resolve a spoken device phrase for a verb.
    pub fn resolve(&self, phrase: &str, verb: Verb) -> Resolution {
        let domains = domains_for(verb);
        let t = tokens(phrase);
        let candidates: Vec<&Entity> = self
            .entities
            .values()
            .filter(|e| domains.contains(&e.domain()))
            .collect();
        if t.is_empty() {
            return Resolution::Unknown {
                phrase: phrase.to_owned(),
            };
        }

        // 1. By name or alias, over the whole house.
        let mut scored: Vec<(f64, &Entity)> = candidates
            .iter()
            .map(|e| (self.best_name_score(e, &t), *e))
            .filter(|(s, _)| *s >= DIRECT_THRESHOLD)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some((best, e)) = scored.first() {
            let ties: Vec<&Entity> = scored
                .iter()
                .filter(|(s, _)| (best - s).abs() < 1e-9)
                .map(|(_, e)| *e)
                .collect();
            if ties.len() == 1 || *best >= 0.999 {
                return Resolution::Entities(vec![e.entity_id.clone()]);
            }
        }

        // 2. By area: the longest area name contained in the phrase.
        let mut area: Option<(&str, Vec<String>)> = None;
        for (id, (name, aliases)) in &self.areas {
            for n in std::iter::once(name).chain(aliases) {
                let at = tokens(n);
                let inside =
                    !at.is_empty() && at.iter().all(|w| t.iter().any(|x| word_match(x, w) > 0.0));
                if inside && area.as_ref().is_none_or(|(_, best)| at.len() > best.len()) {
                    area = Some((id.as_str(), at));
                }
            }
        }
        let generic: Vec<&str> = t.iter().filter_map(|w| generic_domain(w)).collect();
        if let Some((area_id, area_tokens)) = area {
            let rest: Vec<String> = t
                .iter()
                .filter(|w| !area_tokens.iter().any(|a| word_match(w, a) > 0.0))
                .cloned()
                .collect();
            let in_area: Vec<&Entity> = candidates
                .iter()
                .copied()
                .filter(|e| self.area_of(&e.entity_id) == Some(area_id))
                .collect();
            let all_generic = rest.iter().all(|w| generic_domain(w).is_some());
            let hits: Vec<String> = if all_generic {
                in_area
                    .iter()
                    .filter(|e| generic.is_empty() || generic.contains(&e.domain()))
                    .map(|e| e.entity_id.clone())
                    .collect()
            } else {
                let mut best: Vec<(f64, &Entity)> = in_area
                    .iter()
                    .map(|e| (self.best_name_score(e, &rest), *e))
                    .filter(|(s, _)| *s >= IN_AREA_THRESHOLD)
                    .collect();
                best.sort_by(|a, b| b.0.total_cmp(&a.0));
                best.first()
                    .map(|(_, e)| e.entity_id.clone())
                    .into_iter()
                    .collect()
            };
            if !hits.is_empty() {
                return Resolution::Entities(hits);
            }
            return Resolution::Unknown {
                phrase: phrase.to_owned(),
            };
        }

        // 3. Any part of a name that only one device has: "the kettle" for "Kitchen kettle",
        //    "the ceiling" for "Ceiling Lights". Every word of the phrase must be in the name,
        //    and one of them must say more than the kind of device ("the lights" is step 4's).
        if t.iter().any(|w| generic_domain(w).is_none()) {
            let within = |e: &Entity| {
                self.names_of(e).iter().any(|n| {
                    let nt = tokens(n);
                    t.iter().all(|w| nt.iter().any(|x| word_match(w, x) > 0.0))
                })
            };
            let hits: Vec<&Entity> = candidates.iter().copied().filter(|e| within(e)).collect();
            match hits.as_slice() {
                [] => {}
                [one] => return Resolution::Entities(vec![one.entity_id.clone()]),
                many => {
                    return Resolution::Ambiguous {
                        phrase: phrase.to_owned(),
                        options: many.iter().map(|e| e.name.clone()).collect(),
                    };
                }
            }
        }

        // 4. Only a kind of device: "all the lights" means all of them; "the lights" asks which.
        let all = phrase
            .split(' ')
            .any(|w| matches!(w, "all" | "every" | "everything"));
        if all && t.iter().all(|w| generic_domain(w).is_some()) {
            let hits: Vec<String> = candidates
                .iter()
                .filter(|e| generic.contains(&e.domain()))
                .map(|e| e.entity_id.clone())
                .collect();
            if !hits.is_empty() {
                return Resolution::Entities(hits);
            }
        }
        if !generic.is_empty() && t.iter().all(|w| generic_domain(w).is_some()) {
            let options: Vec<String> = candidates
                .iter()
                .filter(|e| generic.contains(&e.domain()))
                .map(|e| e.name.clone())
                .collect();
            if options.len() == 1 {
                let only = candidates.iter().find(|e| generic.contains(&e.domain()));
                if let Some(e) = only {
                    return Resolution::Entities(vec![e.entity_id.clone()]);
                }
            }
            if !options.is_empty() {
                return Resolution::Ambiguous {
                    phrase: phrase.to_owned(),
                    options,
                };
            }
        }
        Resolution::Unknown {
            phrase: phrase.to_owned(),
        }
    }

    /// Apply a `state_changed` event's `new_state` (null: removed).
    pub fn apply_state(&mut self, entity_id: &str, new_state: &Value) {
        if new_state.is_null() {
            self.entities.remove(entity_id);
            return;
        }
        if let Some(e) = entity_from_state(new_state) {
            self.entities.insert(entity_id.to_owned(), e);
        }
    }

    pub fn set_states(&mut self, states: &[Value]) {
        self.entities = states
            .iter()
            .filter_map(entity_from_state)
            .map(|e| (e.entity_id.clone(), e))
            .collect();
    }

    pub fn set_areas(&mut self, list: &[Value]) {
        self.areas = list
            .iter()
            .filter_map(|a| {
                Some((
                    a["area_id"].as_str()?.to_owned(),
                    (a["name"].as_str()?.to_owned(), strings(&a["aliases"])),
                ))
            })
            .collect();
    }

    pub fn set_devices(&mut self, list: &[Value]) {
        self.device_area = list
            .iter()
            .filter_map(|d| {
                Some((
                    d["id"].as_str()?.to_owned(),
                    d["area_id"].as_str()?.to_owned(),
                ))
            })
            .collect();
    }

    /// Entries from `config/entity_registry/list` or `get_entries` (the latter carries aliases).
    pub fn set_registry_entries<'a>(&mut self, entries: impl Iterator<Item = &'a Value>) {
        for e in entries {
            let Some(id) = e["entity_id"].as_str() else {
                continue;
            };
            let slot = self.registry.entry(id.to_owned()).or_default();
            slot.area_id = e["area_id"].as_str().map(str::to_owned);
            slot.device_id = e["device_id"].as_str().map(str::to_owned);
            slot.name = e["name"].as_str().map(str::to_owned);
            if e.get("aliases").is_some() {
                slot.aliases = strings(&e["aliases"]);
            }
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn entity_from_state(s: &Value) -> Option<Entity> {
    let entity_id = s["entity_id"].as_str()?.to_owned();
    let name = s["attributes"]["friendly_name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            entity_id
                .split_once('.')
                .map_or(entity_id.clone(), |(_, o)| o.replace('_', " "))
        });
    Some(Entity {
        entity_id,
        name,
        state: s["state"].as_str().unwrap_or("unknown").to_owned(),
        attributes: s["attributes"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn house() -> Index {
        let mut i = Index::default();
        let st = |id: &str, name: &str, state: &str| json!({"entity_id": id, "state": state, "attributes": {"friendly_name": name}});
        i.set_states(&[
            st("light.kitchen_lights", "Kitchen Lights", "on"),
            st("light.bed_light", "Bed Light", "off"),
            st("light.ceiling_lights", "Ceiling Lights", "on"),
            st("light.office_rgbw_lights", "Office RGBW Lights", "on"),
            st("switch.decorative_lights", "Decorative Lights", "on"),
            st("switch.ac", "AC", "off"),
            st("cover.hall_window", "Hall Window", "open"),
            st("input_boolean.kitchen_kettle", "Kitchen kettle", "off"),
            st("light.desk_lamp", "Desk lamp", "off"),
            st("light.floor_lamp", "Floor lamp", "off"),
        ]);
        i.set_areas(&[
            json!({"area_id": "kitchen", "name": "Kitchen"}),
            json!({"area_id": "bedroom", "name": "Bedroom"}),
            json!({"area_id": "office", "name": "Office"}),
            json!({"area_id": "hall", "name": "Hall"}),
        ]);
        i.set_registry_entries(
            [
                json!({"entity_id": "light.kitchen_lights", "area_id": "kitchen"}),
                json!({"entity_id": "light.bed_light", "area_id": null, "device_id": "d1", "aliases": ["bedside lamp"]}),
                json!({"entity_id": "switch.decorative_lights", "aliases": ["fairy lights"]}),
                json!({"entity_id": "light.office_rgbw_lights", "area_id": "office"}),
                json!({"entity_id": "switch.ac", "area_id": "office"}),
                json!({"entity_id": "cover.hall_window", "area_id": "hall"}),
            ]
            .iter(),
        );
        i.set_devices(&[json!({"id": "d1", "area_id": "bedroom"})]);
        i
    }

    fn ids(r: Resolution) -> Vec<String> {
        match r {
            Resolution::Entities(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn by_name_alias_area_and_fuzzy() {
        let i = house();
        assert_eq!(
            ids(i.resolve("kitchen lights", Verb::TurnOff)),
            ["light.kitchen_lights"]
        );
        assert_eq!(
            ids(i.resolve("bedside lamp", Verb::TurnOn)),
            ["light.bed_light"]
        );
        assert_eq!(
            ids(i.resolve("fairy lights", Verb::TurnOff)),
            ["switch.decorative_lights"]
        );
        // area via the device's area
        assert_eq!(
            ids(i.resolve("lights in bedroom", Verb::TurnOn)),
            ["light.bed_light"]
        );
        assert_eq!(
            ids(i.resolve("bedroom light", Verb::TurnOn)),
            ["light.bed_light"]
        );
        // typo
        assert_eq!(
            ids(i.resolve("kitchn lights", Verb::TurnOn)),
            ["light.kitchen_lights"]
        );
        assert_eq!(
            ids(i.resolve("ceiling light", Verb::TurnOn)),
            ["light.ceiling_lights"]
        );
        assert_eq!(
            ids(i.resolve("window in hall", Verb::Close)),
            ["cover.hall_window"]
        );
        assert_eq!(ids(i.resolve("office ac", Verb::TurnOn)), ["switch.ac"]);
    }

    #[test]
    fn a_unique_part_of_a_name_is_enough() {
        let i = house();
        assert_eq!(
            ids(i.resolve("kettle", Verb::TurnOn)),
            ["input_boolean.kitchen_kettle"]
        );
        assert_eq!(
            ids(i.resolve("ceiling", Verb::TurnOff)),
            ["light.ceiling_lights"]
        );
        assert_eq!(ids(i.resolve("desk", Verb::TurnOn)), ["light.desk_lamp"]);
        // a part two devices share asks which
        match i.resolve("lamp", Verb::TurnOn) {
            Resolution::Ambiguous { options, .. } => {
                assert!(options.contains(&"Desk lamp".to_owned()), "{options:?}");
                assert!(options.contains(&"Floor lamp".to_owned()), "{options:?}");
            }
            other => panic!("{other:?}"),
        }
        // the verb still decides the kind: no cover is turned on
        assert!(matches!(
            i.resolve("window", Verb::TurnOn),
            Resolution::Unknown { .. }
        ));
    }

    #[test]
    fn several_devices_in_one_request() {
        let i = house();
        assert_eq!(
            ids(i.resolve_all("office lights and kitchen lights", Verb::TurnOn)),
            ["light.office_rgbw_lights", "light.kitchen_lights"]
        );
        assert!(matches!(
            i.resolve_all("kitchen lights and unicorn lamp", Verb::TurnOn),
            Resolution::Unknown { phrase } if phrase == "unicorn lamp"
        ));
    }

    #[test]
    fn unknown_and_ambiguous() {
        let i = house();
        assert!(matches!(
            i.resolve("unicorn lamp", Verb::TurnOn),
            Resolution::Unknown { .. }
        ));
        assert!(matches!(
            i.resolve("garage door", Verb::Open),
            Resolution::Unknown { .. }
        ));
        // a light verb does not reach a cover
        assert!(matches!(
            i.resolve("hall window", Verb::TurnOn),
            Resolution::Unknown { .. }
        ));
        assert!(matches!(
            i.resolve("lights", Verb::TurnOn),
            Resolution::Ambiguous { .. }
        ));
    }
}
