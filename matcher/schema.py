"""Data models shared by every layer: institutes, capability records and requests.

Pydantic v2 models so that every file the engine reads is validated in one place, and every
problem can be reported with the file, line (or record) and field it came from.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FIELD_GROUPS: tuple[str, ...] = (
    "기초소재",
    "응용소재",
    "전자부품",
    "모듈·부품",
    "시스템·장비",
    "바이오·의료",
    "섬유",
)
"""The consortium's field groups (five original groups plus bio/medical and textiles)."""

SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
RECORD_ID = re.compile(r"^[a-z0-9][a-z0-9_.:-]*$")


class CapabilityKind(StrEnum):
    """What a capability record describes.

    `profile` and `programme` describe the institute as a whole (its roles, the regions it serves, the
    support programmes it runs): vague or role-type requests match them where no single team,
    technology or instrument does.
    """

    staff = "staff"
    technology = "technology"
    equipment = "equipment"
    profile = "profile"
    programme = "programme"


KINDS: tuple[str, ...] = tuple(k.value for k in CapabilityKind)
"""Kind names in a fixed order (feature columns, stats columns)."""

KIND_LABEL_KO = {
    CapabilityKind.staff: "인력",
    CapabilityKind.technology: "기술",
    CapabilityKind.equipment: "장비",
    CapabilityKind.profile: "기관역할",
    CapabilityKind.programme: "지원사업",
}


def _strip_nonempty(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _clean_list(values: list[str]) -> list[str]:
    return [v.strip() for v in values if v and v.strip()]


Basis = Literal["sourced", "general"]
"""Where a record's claims come from: a cited public source, or general knowledge (no source found)."""


class Site(BaseModel):
    """A seat of an institute (HQ or branch): where it is and what it does there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """As sources name it, e.g. "창원 본원", "진해 첨단소재 실증연구단지"."""
    city: str | None = None
    """시/군/구 as written in Korean, e.g. "창원", "원주", "세종"."""
    region: str | None = None
    """시/도 short form, e.g. "경남", "강원", "서울"."""
    role: str | None = None
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _nonempty(cls, value: str) -> str:
        return _strip_nonempty(value)

    @field_validator("sources")
    @classmethod
    def _lists(cls, values: list[str]) -> list[str]:
        return _clean_list(values)


class Institute(BaseModel):
    """A research institute of the consortium (or a neighbouring public institute)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name_ko: str
    name_en: str
    acronym: str
    aliases: list[str] = Field(default_factory=list)
    former_names: list[str] = Field(default_factory=list)
    """Earlier official names (labels in old cases use them), e.g. "재료연구소"."""
    city: str
    sites: list[Site] = Field(default_factory=list)
    groups: list[str]
    summary: str
    homepage: str | None = None
    sources: list[str] = Field(default_factory=list)
    """Sources for the institute's facts (names, seats, summary): an address or a title, with a date."""

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(f"must be a short lowercase slug like 'kims', got {value!r}")
        return value

    @field_validator("name_ko", "name_en", "acronym", "city", "summary")
    @classmethod
    def _nonempty(cls, value: str) -> str:
        return _strip_nonempty(value)

    @field_validator("aliases", "former_names", "sources")
    @classmethod
    def _lists(cls, values: list[str]) -> list[str]:
        return _clean_list(values)

    @field_validator("groups")
    @classmethod
    def _groups(cls, values: list[str]) -> list[str]:
        values = _clean_list(values)
        if not values:
            raise ValueError("must name at least one field group")
        unknown = [g for g in values if g not in FIELD_GROUPS]
        if unknown:
            raise ValueError(f"unknown field group(s) {unknown}; use any of {list(FIELD_GROUPS)}")
        return values

    def names(self) -> list[str]:
        """Every name a person may use for this institute (for label resolution)."""
        return [self.id, self.acronym, self.name_ko, self.name_en, *self.aliases, *self.former_names]

    def site_names(self) -> list[str]:
        return [site.name for site in self.sites]


class Capability(BaseModel):
    """One record of what an institute can do: a team's expertise, a technology or a piece of equipment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    institute: str
    kind: CapabilityKind
    title: str
    description: str
    keywords: list[str] = Field(default_factory=list)
    # staff
    team: str | None = None
    role: str | None = None
    field: str | None = None
    # technology
    applications: list[str] = Field(default_factory=list)
    # equipment
    model: str | None = None
    specs: str | None = None
    purpose: str | None = None
    location: str | None = None
    """The site (one of the institute's `sites` names) where the team works or the equipment stands."""
    accreditation: str | None = None
    """An accreditation (e.g. KOLAS) only where a cited source states it."""
    sources: list[str] = Field(default_factory=list)
    """Public sources for this record: an address or a title, with a date. Empty: general knowledge."""

    @field_validator("id")
    @classmethod
    def _record_id(cls, value: str) -> str:
        value = value.strip()
        if not RECORD_ID.match(value):
            raise ValueError(f"must be lowercase letters, digits and - _ . : only, got {value!r}")
        return value

    @field_validator("title", "description")
    @classmethod
    def _nonempty(cls, value: str) -> str:
        return _strip_nonempty(value)

    @field_validator("keywords", "applications", "sources")
    @classmethod
    def _lists(cls, values: list[str]) -> list[str]:
        return _clean_list(values)

    @property
    def basis(self) -> Basis:
        """`sourced` when the record cites a source, else `general` (written from general knowledge)."""
        return "sourced" if self.sources else "general"

    def text(self) -> str:
        """The text that is embedded and indexed: title, description and every descriptive field."""
        parts = [self.title, self.description]
        if self.keywords:
            parts.append(", ".join(self.keywords))
        for extra in (self.team, self.field, self.model, self.specs, self.purpose):
            if extra:
                parts.append(extra)
        if self.applications:
            parts.append(", ".join(self.applications))
        return " \n".join(parts)


class Request(BaseModel):
    """A company's description of its technical difficulty."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    text: str
    title: str | None = None
    company: str | None = None
    industry: str | None = None
    product: str | None = None
    region: str | None = None
    submitted_at: date | datetime | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: object) -> str:
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-empty string")
        return value.strip()

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _strip_nonempty(value)

    def full_text(self) -> str:
        """Title and text together: what the matcher reads."""
        if self.title and self.title.strip() and self.title.strip() not in self.text:
            return f"{self.title.strip()}. {self.text}"
        return self.text


class LabeledRequest(Request):
    """A request with the institutes that should handle it (empty: fits no institute)."""

    institutes: list[str] = Field(default_factory=list)

    @field_validator("institutes", mode="before")
    @classmethod
    def _labels(cls, value: object) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of institute ids or names")
        return [v.strip() for v in value if v.strip()]
