"""Table and bar plot of the data-free benchmark's results json.

The json (``tools/benchmark_datafree.py``)::

    {"commit": str, "profile": str,
     "pairs": {PAIR: {ROW: {"map": f, "map50": f, "images": n,
                            "seconds": s}}}}
"""
from typing import Dict, List

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..utils.fileio import atomic_open


def results_table(results: Dict) -> str:
    """A markdown table: one line per (pair, row) with its numbers.

    ``% of teacher`` and ``% of kd_real`` are the row's mAP@0.5 relative to
    the pair's ``teacher`` and ``kd_real`` rows (the targets of the
    data-free rows are stated that way). Rows are
    run one by one, often on different commits, so each line names the
    commit its row ran on; the heading names the commit that wrote the json.
    """
    lines = [
        f"json written at commit {results.get('commit')}, profile "
        f"{results.get('profile')}", '',
        '| pair | row | mAP | mAP@0.5 | % of teacher mAP@0.5 '
        '| % of kd_real mAP@0.5 | images | minutes | commit |',
        '|---|---|---|---|---|---|---|---|---|'
    ]
    for pair, rows in results.get('pairs', {}).items():
        teacher = rows.get('teacher', {}).get('map50')
        kd_real = rows.get('kd_real', {}).get('map50')
        for row, r in rows.items():
            of_teacher = _share(r['map50'], teacher, row == 'teacher')
            of_kd_real = _share(r['map50'], kd_real,
                                row in ('teacher', 'kd_real'))
            minutes = ('' if r.get('seconds') is None else
                       f"{r['seconds'] / 60:.1f}")
            lines.append(f"| {pair} | {row} | {r['map']:.3f} | "
                         f"{r['map50']:.3f} | {of_teacher} | {of_kd_real} | "
                         f"{r['images']} | {minutes} | "
                         f"{str(r.get('commit', ''))[:7]} |")
    return '\n'.join(lines)


def _share(value: float, reference, is_reference: bool) -> str:
    """``value`` as a percentage of ``reference`` ('' for the reference
    row itself or without one)."""
    if not reference or is_reference:
        return ''
    return f'{100 * value / reference:.0f} %'


def plot_datafree_results(results: Dict, path: str) -> None:
    """Grouped bars of mAP@0.5 per row, one group per pair; written
    atomically (temporary file + rename).

    Args:
        results (dict): The results json.
        path (str): PNG to write.
    """
    pairs = [(p, rows) for p, rows in results.get('pairs', {}).items()
             if rows]
    fig = Figure(figsize=(10, 1.2 + 2.2 * max(len(pairs), 1)))
    FigureCanvasAgg(fig)
    for index, (pair, rows) in enumerate(pairs, 1):
        ax = fig.add_subplot(len(pairs), 1, index)
        names: List[str] = list(rows)
        map50 = np.array([rows[n]['map50'] for n in names])
        maps = np.array([rows[n]['map'] for n in names])
        x = np.arange(len(names))
        ax.bar(x - 0.2, map50, 0.4, label='mAP@0.5')
        ax.bar(x + 0.2, maps, 0.4, label='mAP')
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=20, ha='right', fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f'{pair} (test split)', fontsize=10)
        ax.legend(fontsize=8, loc='upper right')
    if not pairs:
        fig.text(0.5, 0.5, 'no finished rows', ha='center')
    fig.suptitle(f"data-free distillation, profile "
                 f"{results.get('profile')}, commit "
                 f"{str(results.get('commit'))[:12]}", fontsize=10)
    fig.tight_layout()
    save_png_atomic(fig, path)


def plot_scaling(points: List[Dict], references: Dict[str, float],
                 path: str) -> None:
    """The student's test mAP@0.5 against the number of synthesized images
    and against their synthesis CPU-minutes, with the teacher's and the
    real-image student's (``kd_real``) mAP@0.5 as lines.

    Args:
        points (list[dict]): ``images``, ``synth_minutes`` (or None),
            ``map50`` per point.
        references (dict): Row name -> mAP@0.5 drawn as a horizontal line.
        path (str): PNG to write (atomically).
    """
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = (fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2))
    for ax, key, label in zip(axes, ('images', 'synth_minutes'),
                              ('distinct synthesized images',
                               'synthesis CPU-minutes (2 cores)')):
        shown = [p for p in points if p.get(key) is not None]
        ax.plot([p[key] for p in shown], [p['map50'] for p in shown], 'o-',
                label='data-free student')
        for p in shown:
            ax.annotate(f"{p['map50']:.3f}", (p[key], p['map50']),
                        fontsize=8, textcoords='offset points',
                        xytext=(0, 5))
        for (name, value), style in zip(references.items(), ('--', ':')):
            ax.axhline(value, linestyle=style, color='gray', label=name)
        ax.set_xscale('log')
        ax.set_xlabel(label)
        ax.set_ylabel('test split mAP@0.5')
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    save_png_atomic(fig, path)


def save_png_atomic(fig: Figure, path: str, dpi: int = 90) -> None:
    """Writes a figure as PNG under a temporary name, then renames it, so
    an earlier plot is never left half-written.

    Args:
        fig (Figure): A matplotlib figure with an Agg canvas.
        path (str): PNG to write; its folder is created.
        dpi (int): Resolution. Defaults to 90.
    """
    with atomic_open(path) as f:
        fig.savefig(f, format='png', dpi=dpi)
