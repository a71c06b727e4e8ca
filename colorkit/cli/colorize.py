"""``colorkit colorize``: k colorizations of each image at its own resolution."""

from __future__ import annotations

import click

from colorkit.cli.options import option_pairs, parse_options, progress_option
from colorkit.core.sequence import SCENE_THRESHOLD
from colorkit.core.stages import MAX_SEED
from colorkit.data.imageio import MAX_PIXELS
from colorkit.inference.photo import MAX_K


@click.command("colorize")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--run", "run_dir", default=None, type=click.Path(),
              help="Run directory from `colorkit train` [default: the bundled demo model: mdn, small preset, trained "
                   "only on ~300 small (64x64) demo photos; a demonstration, not a model of a large data set].")
@click.option("--k", type=click.IntRange(min=1, max=MAX_K), default=5, show_default=True,
              help="Colorizations per image.")
@click.option("--out", type=click.Path(file_okay=False), default="colorized", show_default=True)
@click.option("--mode", default=None, help="Sampling mode of the method (e.g. topk or mixture for mdn).")
@click.option("--seed", type=click.IntRange(min=0, max=MAX_SEED), default=0, show_default=True,
              help="Seed of the sampling.")
@click.option("--device", default="auto", show_default=True)
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
              help="Largest photo accepted, in pixels (memory is about 20 bytes per pixel).")
@click.option("--batch-size", type=click.IntRange(min=1, max=256), default=8, show_default=True,
              help="Folder or glob: photos the model colorizes at once.")
@click.option("--format", "fmt_name", type=click.Choice(["png", "jpg", "webp"], case_sensitive=False), default=None,
              help="Photos: format of the outputs: png (lossless) [default], jpg or webp (lossy, several times "
                   "smaller files).")
@click.option("--quality", type=click.IntRange(min=1, max=100), default=None,
              help="Photos: quality of jpg or webp outputs, 1-100 [default: 95 for jpg, 90 for webp].")
@click.option("--frames", "as_frames", is_flag=True,
              help="Clip: IMAGES is one folder of numbered frames (frame_0001.png, ...) to colorize as a clip.")
@click.option("--fps", type=float, default=None,
              help="Clip: frame rate of a folder of frames given with --frames, above 0 and at most 1000 "
                   "[default: 24].")
@click.option("--container", type=click.Choice(["mp4", "mov", "mkv", "webm", "avi"], case_sensitive=False),
              default=None,
              help="Clip: file type of the versions: mp4, mov or mkv (H.264), webm (VP9) or avi (MPEG-4) [default: "
                   "the clip's own; mp4 for a GIF; a folder of PNG frames for a folder of frames].")
@click.option("--scene-threshold", type=click.FloatRange(min=0, min_open=True, max=1), default=SCENE_THRESHOLD,
              show_default=True,
              help="Clip: a frame whose grey histogram differs from the previous frame's by more than this (total "
                   "variation distance, 0-1) starts a new scene, where each version may choose new colours; 1 never "
                   "cuts.")
@click.option("--hint", "hint_args", multiple=True, metavar="X,Y,#RRGGBB[,R]",
              help="Photo: a colour hint (repeatable): the colour at point X,Y of the photo, in its pixels as it is "
                   "shown (from the top left), optionally over a radius R in pixels; e.g. 120,80,#3a7a2f.")
@click.option("--hints", "hints_path", default=None, type=click.Path(),
              help="Photo: a JSON file of colour hints, [{\"x\": 120, \"y\": 80, \"color\": \"#3a7a2f\"}, ...] "
                   "(with --hint: both are used). In a folder, NAME.hints.json beside NAME.jpg gives that photo's "
                   "hints.")
@progress_option
@option_pairs(help="Sampling setting of the method (repeatable), e.g. temperature=0.5 for colornet; mode=... "
                   "as --mode.")
def colorize(images, run_dir, k, out, mode, seed, device, max_pixels, batch_size, fmt_name, quality, as_frames, fps,
             container, scene_threshold, hint_args, hints_path, quiet, options) -> None:
    """Write K colorizations of each IMAGE (colour or grey), of every image in a folder, or
    of every file a quoted glob matches.

    Files: OUT/<stem>_<i>.png at the input's resolution (predicted ab upsampled and joined
    with the input's L) and OUT/grid.png (grey | K colorizations per row). Colorizations are
    composed and encoded in threads; all outputs appear together at the end, so a
    failure (a full disk) leaves none of them. --format jpg or webp writes <stem>_<i>.jpg or
    .webp instead (lossy, at --quality). A file in OUT that colorkit did not make is never
    replaced: the outputs take the next free name (<stem>-2_<i>.png, grid-2.png);
    OUT/colorize-photos.json records what colorkit made.

    A folder or glob (the only IMAGES argument): OUT/<relative folder>/<stem>_<i>.png for
    every image, with a progress bar and a count of skipped files per reason (the reasons
    of `colorkit data info`; the files are listed in OUT/colorize.json). Each output is
    written atomically, so an interrupted run resumes: a rerun skips images that are done
    and unchanged (their path and content are recorded). Outputs always lie inside OUT and
    never replace another photo's: photos whose names would clash are named apart.

    A clip (.mp4, .mov, .mkv, .avi, .webm, an animated .gif, or a folder of numbered frames
    with --frames; the only IMAGES argument): OUT/<stem>_<i>.<ext> for each of the K versions
    (a folder of PNG frames for a folder of frames; MP4 for a GIF), at the clip's own size and
    frame timing with its audio copied, each version keeping its colours from frame to frame,
    and OUT/<stem>_sheet.png (a few frames per version); --container chooses another file
    type. Video files need the video extra (pip install 'colorkit[video]'). A rerun of the
    same clip (same content) after an interruption makes only the missing versions. Files
    in OUT that colorkit did not make for this clip are never replaced: the clip is named
    apart (<stem>-<ext>_<i>...) instead.

    Colour hints (one photo): --hint X,Y,#RRGGBB (repeatable) and --hints FILE give the
    colour at points of the photo, in its pixels as it is shown; each colorization takes
    that colour there and spreads it along the photo's edges. OUT/<stem>_hints.json
    records the hints used. In a folder or glob, a file NAME.hints.json beside a photo
    NAME.jpg gives that photo's hints (a rerun colorizes a photo again when its hints
    change; a bad hints file skips its photo, with the reason bad-hints).

    Colour photos are turned grey first. Without --run the bundled demo model is used.

    \b
    Examples:
      colorkit colorize photo.jpg old.png --k 5 --out colorized/
      colorkit colorize photo.jpg --hint 120,80,#3a7a2f --hint 30,40,#c03020,6
      colorkit colorize ~/old-photos --out ~/old-photos-colorized
      colorkit colorize ~/old-photos --format jpg --quality 90 --out small/
      colorkit colorize 'scans/**/*.tif' --run runs/mdn --out colorized/
      colorkit colorize film.mp4 --k 5 --out film-colorized/
      colorkit colorize scans/reel1/ --frames --fps 18 --out reel1-colorized/
    """
    from colorkit.apps.colorize import Request, colorize_inputs

    colorize_inputs(Request(images=list(images), run_dir=run_dir, k=k, out=out, mode=mode, seed=seed, device=device,
                            max_pixels=max_pixels, batch_size=batch_size, fmt_name=fmt_name, quality=quality,
                            as_frames=as_frames, fps=fps, container=container, scene_threshold=scene_threshold,
                            hint_args=list(hint_args), hints_path=hints_path, progress=not quiet,
                            options=parse_options(options)),
                    echo=click.echo, note=lambda m: click.echo(m, err=True))
