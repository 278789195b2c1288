"""Processing parameters derived from the settings schema, and the config values read back from them.

Parameter names are the setting names in capitals; choices are stored as their names (static strings), never as
indices, so a saved Modeler model survives a new registry entry.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

try:  # QGIS ≥ 3.36
    from qgis.core import Qgis

    ADVANCED = Qgis.ProcessingParameterFlag.Advanced
except AttributeError:  # QGIS 3.22 – 3.34
    ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced

WEIGHTS_FILE = "WEIGHTS_FILE"


def parameter_name(setting) -> str:
    return setting.name.upper()


def automatic_settings(cls: type, by_hand: tuple[str, ...]) -> list:
    """The settings of ``cls`` that Processing exposes and the algorithm does not declare itself."""
    from ..core.schema import settings_of

    return [s for s in settings_of(cls) if s.exposed("processing") and s.name not in by_hand]


def add_setting_parameters(algorithm, cls: type, by_hand: tuple[str, ...]) -> None:
    """Add one parameter per automatic setting of ``cls`` to ``algorithm`` (in declaration order)."""
    from ..core.schema import default_of

    for s in automatic_settings(cls, by_hand):
        default = default_of(cls, s.name)
        for parameter in _parameters(s, default):
            parameter.setHelp(s.describe())
            if s.advanced:
                parameter.setFlags(parameter.flags() | ADVANCED)
            algorithm.addParameter(parameter)


def setting_values(algorithm, parameters: dict, context, cls: type, by_hand: tuple[str, ...]) -> dict[str, Any]:
    """The automatic settings' values as ``cls.from_dict`` takes them."""
    values = {}
    for s in automatic_settings(cls, by_hand):
        name = parameter_name(s)
        if s.kind == "int":
            values[s.name] = algorithm.parameterAsInt(parameters, name, context)
        elif s.kind == "float":
            values[s.name] = algorithm.parameterAsDouble(parameters, name, context)
        elif s.kind == "bool":
            values[s.name] = algorithm.parameterAsBool(parameters, name, context)
        elif s.kind == "choice":
            values[s.name] = algorithm.parameterAsEnumString(parameters, name, context)
        elif s.kind == "weights":
            values[s.name] = (algorithm.parameterAsFile(parameters, WEIGHTS_FILE, context)
                              or algorithm.parameterAsEnumString(parameters, name, context))
        else:
            text = algorithm.parameterAsString(parameters, name, context)
            values[s.name] = text or (None if s.nullable else text)
    return values


def _parameters(s, default: Any) -> list:
    name, label = parameter_name(s), s.label + (f" ({s.unit})" if s.unit else "")
    if s.kind in ("int", "float"):
        kind = QgsProcessingParameterNumber.Type.Integer if s.kind == "int" else QgsProcessingParameterNumber.Type.Double
        limits = {k: v for k, v in (("minValue", s.minimum), ("maxValue", s.maximum)) if v is not None}
        number = QgsProcessingParameterNumber(name, label, kind, default, optional=default is None, **limits)
        if s.kind == "float":  # else QGIS shows six decimals: "50.000000"
            number.setMetadata({"widget_wrapper": {"decimals": _decimals(s)}})
        return [number]
    if s.kind == "bool":
        return [QgsProcessingParameterBoolean(name, label, defaultValue=default)]
    if s.kind in ("choice", "weights"):
        enum = QgsProcessingParameterEnum(name, label, options=list(s.registry.names()), defaultValue=default,
                                          usesStaticStrings=True)
        if s.kind == "choice":
            return [enum]
        return [enum, QgsProcessingParameterFile(WEIGHTS_FILE, "Weights file (instead of the above)", optional=True,
                                                 fileFilter="Weights (*.pth *.pt *.geofm)")]
    # An empty default ("no licence") is a value to keep, not a missing one: Processing refuses a required "".
    return [QgsProcessingParameterString(name, label, defaultValue=default, optional=s.nullable or default == "")]


def _decimals(s) -> int:
    """Decimals a float setting is shown with: whole per cents, enough for a learning rate of 1e-6."""
    if s.unit == "%":
        return 0
    if 0 < (s.minimum or 0) < 1e-3:
        return 6
    return 4 if (s.maximum or 0) <= 1 else 1
