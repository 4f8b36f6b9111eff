from django import forms

from .scoring import BANDS, HIGHER_IS_BETTER, LOWER_IS_BETTER, SCORE_AS_BAD, SKIP, THRESHOLDS

# Where each part of a measure's error path (see health.measures) is shown in the measure form.
ERROR_FIELDS = {
    "source": "source", "label": "label", "weight": "weight", "missing": "missing", "type": "mapping_type",
    "direction": "direction", "bad": "bad", "good": "good", "bands": "bands",
}


class BandsForm(forms.Form):
    red_below = forms.IntegerField(label="Red below", min_value=1, max_value=100)
    green_from = forms.IntegerField(label="Green from", min_value=1, max_value=100)

    def clean(self):
        data = super().clean()
        if "red_below" in data and "green_from" in data and data["red_below"] > data["green_from"]:
            self.add_error("green_from", "Green must start at or above where red ends.")
        return data


class ScorecardForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 2}), required=False)
    note = forms.CharField(
        label="What changed", max_length=500, required=False, help_text="Kept with the version, e.g. “weigh logins more”."
    )


def parse_bands(text):
    """"5:0, 20:60, :100" -> [[5.0, 0.0], [20.0, 60.0], [None, 100.0]]: upper bound, then points."""
    bands = []
    for part in text.replace("\n", ",").split(","):
        if not part.strip():
            continue
        upper, sep, points = part.partition(":")
        if not sep:
            raise forms.ValidationError(f"Write each band as upper_bound:points; “{part.strip()}” has no colon.")
        try:
            bands.append([float(upper) if upper.strip() else None, float(points)])
        except ValueError as exc:
            raise forms.ValidationError(f"“{part.strip()}” is not upper_bound:points with numbers.") from exc
    if not bands:
        raise forms.ValidationError("List at least one band, e.g. 5:0, 20:60, :100.")
    return bands


def format_bands(bands):
    return ", ".join(f"{'' if upper is None else f'{upper:g}'}:{points:g}" for upper, points in bands)


class MeasureForm(forms.Form):
    source = forms.CharField(
        label="Source", max_length=200, widget=forms.TextInput(attrs={"list": "measure-sources"}),
        help_text="A metric key, account.mrr or account.attributes.<name>.",
    )
    label = forms.CharField(label="Label", max_length=200, required=False)
    weight = forms.FloatField(label="Weight", min_value=0.01, initial=1)
    mapping_type = forms.ChoiceField(
        label="Scored by", choices=[(THRESHOLDS, "Bad to good thresholds"), (BANDS, "Bands")], initial=THRESHOLDS
    )
    direction = forms.ChoiceField(
        label="Direction", choices=[(HIGHER_IS_BETTER, "Higher is better"), (LOWER_IS_BETTER, "Lower is better")],
        initial=HIGHER_IS_BETTER,
    )
    bad = forms.FloatField(label="Bad (0 points)", required=False)
    good = forms.FloatField(label="Good (100 points)", required=False)
    bands = forms.CharField(label="Bands", required=False, help_text="upper_bound:points, e.g. 5:0, 20:60, :100")
    missing = forms.ChoiceField(
        label="No data", choices=[(SKIP, "Leave out of the score"), (SCORE_AS_BAD, "Score as bad")], initial=SKIP
    )

    def clean(self):
        data = super().clean()
        if data.get("mapping_type") == THRESHOLDS:
            for name in ("bad", "good"):
                if data.get(name) is None and name not in self.errors:
                    self.add_error(name, "A number is required.")
        elif data.get("mapping_type") == BANDS and "bands" in data:
            try:
                data["parsed_bands"] = parse_bands(data["bands"])
            except forms.ValidationError as error:
                self.add_error("bands", error)
        return data

    def measure(self):
        data = self.cleaned_data
        if data["mapping_type"] == THRESHOLDS:
            mapping = {"type": THRESHOLDS, "direction": data["direction"], "bad": data["bad"], "good": data["good"]}
        else:
            mapping = {"type": BANDS, "bands": data["parsed_bands"]}
        measure = {"source": data["source"].strip(), "weight": data["weight"], "missing": data["missing"], "mapping": mapping}
        if data["label"]:
            measure["label"] = data["label"]
        return measure

    @staticmethod
    def initial_for(measure):
        mapping = measure["mapping"]
        return {
            "source": measure["source"], "label": measure.get("label", ""), "weight": measure["weight"],
            "mapping_type": mapping["type"], "direction": mapping.get("direction", HIGHER_IS_BETTER),
            "bad": mapping.get("bad"), "good": mapping.get("good"),
            "bands": format_bands(mapping["bands"]) if mapping["type"] == BANDS else "",
            "missing": measure.get("missing", SKIP),
        }


MeasureFormSet = forms.formset_factory(MeasureForm, extra=1, can_delete=True, max_num=30, validate_max=True)
