"""Regenerates model_catalog.json from an installed SimpleTuner (its
model_metadata.json lists the families; each family's model.py holds its
flavours' Hugging Face paths and default flavour). Run with the Python that
has simpletuner installed:  python make_model_catalog.py > model_catalog.json
"""

import ast
import importlib.metadata
import json
import pathlib

# Located without importing simpletuner (which needs torch, PIL, ...).
dist = importlib.metadata.distribution("simpletuner")
root = pathlib.Path(dist.locate_file("simpletuner/helpers/models"))
metadata = json.loads((root / "model_metadata.json").read_text())


def class_attrs(path, class_name):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            out = {}
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target = stmt.targets[0]
                    if isinstance(target, ast.Name):
                        try:
                            out[target.id] = ast.literal_eval(stmt.value)
                        except ValueError:
                            pass
            return out
    return {}


families = []
for family, meta in sorted(metadata.items()):
    module = meta["module_path"].split(".")
    attrs = class_attrs(root / module[-2] / (module[-1] + ".py"), meta["class_name"])
    paths = attrs.get("HUGGINGFACE_PATHS", {})
    flavours = meta.get("flavour_choices") or list(paths)
    default = attrs.get("DEFAULT_MODEL_FLAVOUR")
    if default not in flavours:
        default = flavours[0] if flavours else None
    families.append(
        {
            "family": family,
            "name": meta["name"],
            "prediction_type": meta.get("prediction_type"),
            "default_flavour": default,
            "flavours": [{"flavour": f, "base_model": paths.get(f)} for f in flavours],
        }
    )

print(
    json.dumps(
        {"simpletuner_version": importlib.metadata.version("simpletuner"), "families": families},
        indent=1,
    )
)
