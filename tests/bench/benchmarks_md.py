"""BENCHMARKS.md sections written by the bench scripts: each section sits between
<!-- bench:NAME --> and <!-- /bench:NAME --> (the heading inside), and a rerun replaces it."""
import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "BENCHMARKS.md")


def markers(name):
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def record(name, section):
    """Puts section (markdown starting with its heading) between NAME's markers, replacing
    what was there, or appends it with the markers when the file has none."""
    begin, end = markers(name)
    body = section.strip("\n")
    if body.startswith(begin):
        body = body[len(begin):].lstrip("\n")
    if body.endswith(end):
        body = body[:-len(end)].rstrip("\n")
    block = f"{begin}\n{body}\n{end}"
    text = open(PATH).read() if os.path.exists(PATH) else "# Benchmarks\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(PATH, "w") as f:
        f.write(text)
