"""Tiny MTOP-style data made in code: a few intents and slots, utterances in de/es/fr from templates.

Each template gives an utterance and its decoupled logical form; one intent nests a slot inside
another (`[SL:CONTACT [IN:GET_CONTACT ...] ]`), as MTOP does for "my mother".
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

VALUES = {
    "de": {"loc": ["Berlin", "München", "Wien", "Hamburg", "Köln", "Paris"],
           "date": ["morgen früh", "heute Abend", "am Freitag", "um 7 Uhr"],
           "rel": ["Mutter", "Schwester", "Tante", "Oma"], "name": ["Anna", "Jonas", "Lena", "Paul"],
           "text": ["ich komme später", "das Essen ist fertig", "wir treffen uns um 8"]},
    "es": {"loc": ["Madrid", "Bilbao", "Sevilla", "Valencia", "Lima", "Quito"],
           "date": ["mañana por la mañana", "esta noche", "el viernes", "a las 7"],
           "rel": ["madre", "hermana", "tía", "abuela"], "name": ["Ana", "Jorge", "Lucía", "Pablo"],
           "text": ["llego tarde", "la cena está lista", "nos vemos a las 8"]},
    "fr": {"loc": ["Lyon", "Nantes", "Lille", "Genève", "Dakar", "Québec"],
           "date": ["demain matin", "ce soir", "vendredi", "à 7 heures"],
           "rel": ["mère", "sœur", "tante", "grand-mère"], "name": ["Anne", "Hugo", "Léa", "Paul"],
           "text": ["j' arrive plus tard", "le dîner est prêt", "on se voit à 8 heures"]},
}
TEMPLATES = {
    "de": ["Wie ist das Wetter in {loc} {date} ?", "Stell einen Wecker {date}", "Ruf meine {rel} an",
           "Schreib {name} , dass {text}"],
    "es": ["¿ Qué tiempo hace en {loc} {date} ?", "Pon una alarma {date}", "Llama a mi {rel}",
           "Dile a {name} que {text}"],
    "fr": ["Quel temps fait - il à {loc} {date} ?", "Mets un réveil {date}", "Appelle ma {rel}",
           "Écris à {name} que {text}"],
}
POSSESSIVE = {"de": "meine", "es": "mi", "fr": "ma"}


def logical_form(intent: int, lang: str, slots: dict[str, str]) -> str:
    if intent == 0:
        return f"[IN:GET_WEATHER [SL:LOCATION {slots['loc']} ] [SL:DATE_TIME {slots['date']} ] ]"
    if intent == 1:
        return f"[IN:CREATE_ALARM [SL:DATE_TIME {slots['date']} ] ]"
    if intent == 2:
        return (f"[IN:CREATE_CALL [SL:CONTACT [IN:GET_CONTACT [SL:CONTACT_RELATED {POSSESSIVE[lang]} ] "
                f"[SL:TYPE_RELATION {slots['rel']} ] ] ] ]")
    return f"[IN:SEND_MESSAGE [SL:RECIPIENT {slots['name']} ] [SL:CONTENT_EXACT {slots['text']} ] ]"


def mtop_pairs(lang: str) -> list[tuple[str, str]]:
    """Every (utterance, logical form) the templates make for `lang`, in a fixed interleaved order."""
    values = VALUES[lang]
    by_intent = []
    for intent, template in enumerate(TEMPLATES[lang]):
        names = [name for name in ("loc", "date", "rel", "name", "text") if "{" + name + "}" in template]
        rows = []
        for combo in itertools.product(*(values[name] for name in names)):
            slots = dict(zip(names, combo))
            rows.append((template.format(**slots), logical_form(intent, lang, slots)))
        by_intent.append(rows)
    mixed = [row for group in itertools.zip_longest(*by_intent) for row in group if row]
    return mixed


def write_jsonl(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"source": s, "target": t}, ensure_ascii=False) + "\n" for s, t in pairs),
                    encoding="utf-8")
    return path
