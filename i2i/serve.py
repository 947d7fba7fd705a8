"""``i2i serve``: a local web page to try a run: upload an image, pick the direction, download the result.

Built with Gradio (the optional ``[ui]`` extra: ``pip install 'i2i[ui]'``) on the Python API, so
the page translates exactly as ``i2i translate`` does. It listens on 127.0.0.1 unless told otherwise.

The page hands over the uploaded file's path, not a decoded image: the file is decoded by i2i's own
loader (:func:`i2i.data.images.open_image`), under the model's pixel limit, so a small file whose
header claims a huge image is refused before anything is allocated.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .errors import I2IError, UsageError

SERVE_LIMIT_FIX = "whoever runs the page can raise the limit with i2i serve --max-pixels {n} if such files are trusted"


def translate_image(model, image: str | Path | Image.Image | None, direction: str | None) -> Image.Image:
    """What the page's button runs: the translated image, at the input's size.

    ``image`` is the uploaded file's path (decoded here by :func:`~i2i.data.images.open_image` under
    ``model.max_pixels``) or a PIL image. Raises :class:`~i2i.errors.ImageError` for a file that
    cannot be read or is over the limit, :class:`~i2i.errors.UsageError` for no image.
    """
    if image is None:
        raise UsageError("upload an image first")
    if isinstance(image, (str, Path)):
        from .data.images import open_image

        image = open_image(image, max_pixels=getattr(model, "max_pixels", None), limit_fix=SERVE_LIMIT_FIX)
    return model(image, direction=direction or None)


def page_result(model, image, direction) -> Image.Image:
    """:func:`translate_image` as the page runs it: any i2i error becomes a ``gradio.Error`` (its
    one line shown on the page)."""
    import gradio as gr

    try:
        return translate_image(model, image, direction)
    except I2IError as e:
        raise gr.Error(str(e)) from None


def upload_path(component):
    """Make an input ``gr.Image`` hand over the uploaded file's path without opening it at all (its
    own preprocessing calls ``PIL.Image.open``, which raises on a header claiming over twice Pillow's
    pixel limit before i2i could say why). Only this component changes; returns it."""
    original = component.preprocess

    def preprocess(payload):
        path = getattr(payload, "path", None)
        if path and not str(getattr(payload, "url", None) or "").startswith("data:"):
            return str(path)
        return original(payload)  # no file yet, or pasted data (written to a file, not decoded)

    component.preprocess = preprocess
    return component


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
        directions = sorted(Run(run).directions()) or directions
    first = str(example) if example else None

    def run_page(image, direction):  # its name is the page's API endpoint, /run_page
        return page_result(model, image, direction)

    with gr.Blocks(title=f"i2i: {Path(run).name}") as app:
        gr.Markdown(f"# i2i: {Path(run).name}\nUpload an image, pick the direction, and download the result "
                    "(the button at the result's corner).")
        with gr.Row():
            # the file's path, undecoded (image_mode=None: Gradio converts nothing); i2i decodes it, guarded
            source = upload_path(gr.Image(type="filepath", image_mode=None, label="input", value=first))
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
