"""``i2i serve``: a local web page to try a run: upload an image, pick the direction, download the result.

Built with Gradio (the optional ``[ui]`` extra: ``pip install 'i2i[ui]'``) on the Python API, so
the page translates exactly as ``i2i translate`` does. It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .errors import UsageError


def translate_image(model, image: Image.Image | None, direction: str | None) -> Image.Image:
    """What the page's button runs: the translated image, at the input's size."""
    if image is None:
        raise UsageError("upload an image first")
    return model(image, direction=direction or None)


def build_app(run: str | Path, example: str | Path | None = None, **load_options):
    """The Gradio app for ``run``; with ``example``, the page opens with that image translated."""
    try:
        import gradio as gr
    except ImportError:
        raise UsageError("i2i serve needs the ui extra: pip install 'i2i[ui]'") from None
    from .api import load
    from .runs import Run

    model = load(run, **load_options)
    directions = ["AtoB", "BtoA"]
    if Path(run).is_dir():
        gens = Run(run).read_config().get("generators", {})
        directions = sorted({d for g in gens.values() for d in g["directions"]}) or directions
    first = Image.open(example).convert("RGB") if example else None

    def run_page(image, direction):
        try:
            return translate_image(model, image, direction)
        except UsageError as e:
            raise gr.Error(str(e)) from None

    with gr.Blocks(title=f"i2i: {Path(run).name}") as app:
        gr.Markdown(f"# i2i: {Path(run).name}\nUpload an image, pick the direction, and download the result "
                    "(the button at the result's corner).")
        with gr.Row():
            source = gr.Image(type="pil", label="input", value=first)
            result = gr.Image(type="pil", label="result", format="png")
        direction = gr.Radio(directions, value=model.default_direction or directions[0], label="direction",
                             visible=len(directions) > 1)
        button = gr.Button("Translate", variant="primary")
        button.click(run_page, [source, direction], result)
        if first is not None:
            app.load(run_page, [source, direction], result)
    return app


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 7860, example: str | Path | None = None,
          block: bool = True, **load_options):
    """Start the page; returns the app (with ``block=False`` it runs in a background thread)."""
    app = build_app(run, example, **load_options)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True, quiet=True)
    return app
