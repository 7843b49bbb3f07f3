"""``deconv-edge models``: the shipped models, from their manifests (see :mod:`edge_runtime.inference.catalog`)."""

from __future__ import annotations

import argparse

from deconv_edge_core.commands import command


@command
class ModelsCommand:
    name = "models"
    help = "list the shipped models and the names --model accepts (x2, x3, x4, fast, fsrcnn_x3, fsrcnn_x3_int8)"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print the rows as JSON")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from deconv_edge_core.errors import UserError

        from .inference.catalog import (
            ALIASES,
            dump_json,
            model_rows,
            models_table,
            reference_note,
            shipped_models,
        )

        models = shipped_models()
        if not models:
            raise UserError("no model is shipped in this install (edge_runtime/models/ has no valid manifest)")
        rows = model_rows(models)
        if args.json:
            print(dump_json(rows))
            return 0
        print(models_table(rows))
        print("* = the file the model's names run on this device ('deconv-edge doctor' says why)")
        note = reference_note(rows)
        if note:
            print(note)
        names = [f"{a} = {ALIASES.get(a).model} ({ALIASES.get(a).summary})" for a in ALIASES
                 if ALIASES.get(a).model in models]
        print("aliases: " + "; ".join(names))
        print("use: --model NAME (an alias, a model, a file name or its stem), or Enhancer(\"NAME\") in Python")
        return 0
