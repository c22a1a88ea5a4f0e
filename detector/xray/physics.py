"""X-ray physics shared by the simulator and the engine.

One implementation of: material attenuation (NIST/Elam tables via xraydb), the
polychromatic dual-energy detector model (Kramers bremsstrahlung spectrum,
filtration, sandwich low/high scintillator detector), and Beer-Lambert
transmission of stacked objects.

Materials are reduced to a two-basis (photo-electric + Compton) decomposition,
mu/rho(E) ~ a * f_pe(E) + b * f_kn(E) (Alvarez & Macovski 1976), so a scan of any
number of overlapping objects is carried by two areal maps A_pe, A_kn (g/cm^2
weighted) and the polychromatic transmission is computed per energy bin from
those two maps. Transmissions of stacked objects multiply because their basis
coefficients add.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Energy grid (keV) for the polychromatic integration.
ENERGIES_KEV = np.array([20, 26, 32, 38, 45, 52, 60, 70, 80, 92, 105, 120, 140, 160], dtype=np.float64)

# Materials: composition by weight fraction of chemical formulas, and density g/cm^3.
# Densities are nominal; object generators scale them (infill, porosity, folding).
MATERIALS: dict[str, tuple[tuple[tuple[str, float], ...], float, str]] = {
    # name: ((formula, weight fraction), ...), density, kind
    "steel": ((("Fe", 0.98), ("C", 0.01), ("Cr", 0.01)), 7.87, "metal"),
    "aluminium": ((("Al", 1.0),), 2.70, "metal"),
    "zinc_alloy": ((("Zn", 0.96), ("Al", 0.04)), 6.6, "metal"),  # Zamak: alarm pistols
    "brass": ((("Cu", 0.65), ("Zn", 0.35)), 8.5, "metal"),
    "copper": ((("Cu", 1.0),), 8.96, "metal"),
    "lead": ((("Pb", 1.0),), 11.35, "metal"),
    "pla": ((("C3H4O2", 1.0),), 1.24, "organic"),
    "abs": ((("C15H17N", 1.0),), 1.05, "organic"),
    "nylon": ((("C6H11NO", 1.0),), 1.14, "organic"),
    # glass-filled nylon, factory pistol frames (Glock-like)
    "polymer": ((("C6H11NO", 0.7), ("SiO2", 0.2), ("CaO", 0.05), ("Al2O3", 0.05)), 1.40, "organic"),
    "cellulose": ((("C6H10O5", 1.0),), 1.50, "organic"),  # paper, cardboard, cotton (density scaled)
    "textile": ((("C6H10O5", 0.5), ("C10H8O4", 0.5)), 1.40, "organic"),  # cotton/polyester
    "rubber": ((("C5H8", 0.85), ("C", 0.1), ("ZnO", 0.05)), 1.20, "organic"),
    "pvc": ((("C2H3Cl", 1.0),), 1.38, "inorganic"),
    "glass": ((("SiO2", 0.73), ("Na2O", 0.14), ("CaO", 0.09), ("MgO", 0.04)), 2.50, "inorganic"),
    "water": ((("H2O", 1.0),), 1.00, "organic"),
    "sugar": ((("C12H22O11", 1.0),), 1.55, "organic"),  # food, chocolate
    "wood": ((("C6H10O5", 1.0),), 0.65, "organic"),
    "pcb": ((("SiO2", 0.45), ("C15H16O2", 0.35), ("Cu", 0.15), ("Sn", 0.03), ("Pb", 0.02)), 1.9, "inorganic"),
    "battery": ((("LiCoO2", 0.35), ("C", 0.2), ("Cu", 0.15), ("Al", 0.08), ("Fe", 0.12), ("C3H4O3", 0.1)), 2.6, "metal"),
    "ceramic": ((("Al2O3", 0.9), ("SiO2", 0.1)), 3.7, "inorganic"),
    "magnet": ((("Nd2Fe14B", 1.0),), 7.5, "metal"),
    "salt": ((("NaCl", 1.0),), 2.16, "inorganic"),
}


# The tables below, looked up once (xraydb and scipy take ~1.7 s to import in every simulator
# worker): mu/rho of each formula on ENERGIES_KEV and each material's basis coefficients.
# `python -m detector.xray.physics` rewrites it; a test checks it against xraydb.
TABLE_PATH = Path(__file__).with_name("attenuation.json")
DETECTOR_FORMULAS = ("CsI",)


def _mass_attenuation_xraydb(formula: str, energies_kev: np.ndarray) -> np.ndarray:
    import xraydb

    return np.asarray(xraydb.material_mu(formula, energies_kev * 1000.0, density=1.0), dtype=np.float64)


@functools.cache
def _table() -> dict:
    try:
        t = json.loads(TABLE_PATH.read_text())
    except (OSError, ValueError):
        return {"formulas": {}, "basis_coeffs": {}}
    if t.get("energies_kev") != ENERGIES_KEV.tolist():
        return {"formulas": {}, "basis_coeffs": {}}
    return t


def _mass_attenuation(formula: str, energies_kev: np.ndarray) -> np.ndarray:
    row = _table()["formulas"].get(formula)
    if row is not None and np.array_equal(energies_kev, ENERGIES_KEV):
        return np.array(row, dtype=np.float64)
    return _mass_attenuation_xraydb(formula, energies_kev)


@functools.cache
def mu_rho(material: str) -> np.ndarray:
    """Mass attenuation coefficient mu/rho (cm^2/g) of a material on ENERGIES_KEV."""
    comp, _, _ = MATERIALS[material]
    total = np.zeros_like(ENERGIES_KEV)
    for formula, w in comp:
        total += w * _mass_attenuation(formula, ENERGIES_KEV)
    return total


def mu_rho_at(material: str, energy_kev: float) -> float:
    """mu/rho at one energy (log-log interpolation of the grid)."""
    return float(np.exp(np.interp(np.log(energy_kev), np.log(ENERGIES_KEV), np.log(mu_rho(material)))))


def density(material: str) -> float:
    return MATERIALS[material][1]


def _klein_nishina(e_kev: np.ndarray) -> np.ndarray:
    k = e_kev / 511.0
    a = (1 + k) / k**2 * (2 * (1 + k) / (1 + 2 * k) - np.log(1 + 2 * k) / k)
    b = np.log(1 + 2 * k) / (2 * k) - (1 + 3 * k) / (1 + 2 * k) ** 2
    return a + b


_F_PE = (60.0 / ENERGIES_KEV) ** 3
_F_KN = _klein_nishina(ENERGIES_KEV) / _klein_nishina(np.array([60.0]))[0]
_F_PE2 = (60.0 / ENERGIES_KEV) ** 2


@functools.lru_cache(maxsize=1)
def basis() -> np.ndarray:
    """(n_energies, 4) basis: photo-electric E^-3, Compton (Klein-Nishina), E^-2 (the
    Z-dependence of the photo-effect exponent) and the lead curve (its K-edge at 88 keV)."""
    return _basis_matrix(mu_rho("lead"))


def _basis_matrix(pb: np.ndarray) -> np.ndarray:
    return np.stack([_F_PE, _F_KN, _F_PE2, pb / pb[6]], axis=1)


N_BASIS = 4


@functools.cache
def basis_coeffs(material: str) -> tuple[float, ...]:
    """Non-negative coefficients c with mu/rho(E) ~ basis() @ c (relative least squares;
    within 3.5% of the tables for every material here, exact for lead)."""
    row = _table()["basis_coeffs"].get(material)
    if row is not None:
        return tuple(float(c) for c in row)
    return _fit_basis(mu_rho(material), basis())


def _fit_basis(mu: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
    from scipy.optimize import nnls

    w = 1.0 / mu
    coef, _ = nnls(b * w[:, None], mu * w)
    return tuple(float(c) for c in coef)


@dataclass(frozen=True)
class Spectrum:
    """A scanner's dual-energy response: normalised weights of each energy bin in the
    low- and high-energy detector signals (energy-integrating)."""

    kvp: float
    w_low: tuple[float, ...]
    w_high: tuple[float, ...]

    @staticmethod
    def make(kvp: float = 150.0, al_filter_mm: float = 3.0, low_scint_mm: float = 0.4,
             mid_cu_mm: float = 0.5, high_scint_mm: float = 3.0) -> Spectrum:
        e = ENERGIES_KEV
        # Kramers: photon number ~ (kVp - E)/E ; energy fluence ~ (kVp - E)
        phi = np.clip(kvp - e, 0, None) / e
        phi = phi * np.exp(-mu_rho("aluminium") * 2.70 * al_filter_mm / 10.0)
        csi = _mass_attenuation("CsI", e) * 4.51
        cu = mu_rho("copper") * 8.96
        abs_low = 1 - np.exp(-csi * low_scint_mm / 10.0)
        through = np.exp(-csi * low_scint_mm / 10.0) * np.exp(-cu * mid_cu_mm / 10.0)
        abs_high = through * (1 - np.exp(-csi * high_scint_mm / 10.0))
        wl = phi * e * abs_low
        wh = phi * e * abs_high
        return Spectrum(float(kvp), tuple((wl / wl.sum()).tolist()), tuple((wh / wh.sum()).tolist()))

    @staticmethod
    def random(rng: np.random.Generator) -> Spectrum:
        return Spectrum.make(
            kvp=float(rng.uniform(110, 165)),
            al_filter_mm=float(rng.uniform(1.5, 6.0)),
            low_scint_mm=float(rng.uniform(0.25, 0.6)),
            mid_cu_mm=float(rng.uniform(0.2, 1.0)),
            high_scint_mm=float(rng.uniform(2.0, 5.0)),
        )

    @staticmethod
    def mono(energy_kev: float) -> Spectrum:
        """Monoenergetic beam on the grid bin nearest energy_kev (for exact Beer-Lambert checks)."""
        w = np.zeros(len(ENERGIES_KEV))
        w[int(np.argmin(np.abs(ENERGIES_KEV - energy_kev)))] = 1.0
        return Spectrum(float(energy_kev), tuple(w.tolist()), tuple(w.tolist()))

    def effective_energies(self) -> tuple[float, float]:
        e = ENERGIES_KEV
        return float(np.dot(self.w_low, e)), float(np.dot(self.w_high, e))


DEFAULT_SPECTRUM = None


def default_spectrum() -> Spectrum:
    global DEFAULT_SPECTRUM
    if DEFAULT_SPECTRUM is None:
        DEFAULT_SPECTRUM = Spectrum.make()
    return DEFAULT_SPECTRUM


def transmissions(maps: np.ndarray, spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray]:
    """Polychromatic Beer-Lambert: low- and high-energy transmission (0..1) of the
    areal basis maps (N_BASIS, H, W). Stacked objects multiply their transmissions per
    energy bin, because their basis coefficients add."""
    maps = np.asarray(maps, dtype=np.float32)
    shape = maps.shape[1:]
    t_low = np.zeros(shape, dtype=np.float32)
    t_high = np.zeros(shape, dtype=np.float32)
    b = basis().astype(np.float32)
    flat = maps.reshape(N_BASIS, -1)
    for k in range(len(ENERGIES_KEV)):
        wl, wh = spectrum.w_low[k], spectrum.w_high[k]
        if wl < 1e-4 and wh < 1e-4:
            continue
        t = np.exp(-(b[k] @ flat)).reshape(shape)
        if wl >= 1e-4:
            t_low += np.float32(wl) * t
        if wh >= 1e-4:
            t_high += np.float32(wh) * t
    return t_low, t_high


def slab_transmission(material: str, thickness_mm: float, spectrum: Spectrum | None = None,
                      rho: float | None = None) -> tuple[float, float]:
    """Low/high transmission of a uniform slab (for tests, calibration, palette anchors)."""
    spectrum = spectrum or default_spectrum()
    rho = density(material) if rho is None else rho
    areal = rho * thickness_mm / 10.0
    maps = np.array(basis_coeffs(material), dtype=np.float32)[:, None] * areal
    tl, th = transmissions(maps, spectrum)
    return float(tl[0]), float(th[0])


def tabulate() -> dict:
    """What attenuation.json holds, computed afresh from xraydb (and scipy's NNLS for the basis)."""
    import xraydb

    formulas = sorted({f for comp, _, _ in MATERIALS.values() for f, _ in comp} | set(DETECTOR_FORMULAS))
    mu = {f: _mass_attenuation_xraydb(f, ENERGIES_KEV) for f in formulas}

    def mu_of(material):  # as mu_rho() sums it
        total = np.zeros_like(ENERGIES_KEV)
        for formula, w in MATERIALS[material][0]:
            total += w * mu[formula]
        return total

    b = _basis_matrix(mu_of("lead"))
    return {"source": f"xraydb {xraydb.__version__} material_mu (Elam, Ravel and Sieber tables), cm^2/g",
            "energies_kev": ENERGIES_KEV.tolist(), "formulas": {f: v.tolist() for f, v in mu.items()},
            "basis_coeffs": {m: list(_fit_basis(mu_of(m), b)) for m in sorted(MATERIALS)}}


if __name__ == "__main__":
    TABLE_PATH.write_text(json.dumps(tabulate(), indent=1) + "\n")
    print(f"wrote {TABLE_PATH}")
