"""Amortised initialisation: a generator learns where synthesis ends.

A cold batch spends hundreds of teacher passes turning noise into objects
the teacher recognises. An amortised initialisation (Fast-Datafree's idea
for classification) learns, from the images synthesis has already made, a
map from a batch's layout to an image close to what synthesis would make of
it, so that a short schedule from its output does the rest.
:class:`LayoutGenerator` is that map. It is a warm-start source as
:class:`~.object_bank.ObjectBank` is, with the same methods, selected by
``recombine=dict(source='amortised')`` of :class:`DeepInversion`: the first
``cold_batches`` batches run the full recipe and teach it, every later batch
starts from its output and runs the ``recombine`` schedule.

Decisions:

- **Layout in, image out, fully convolutional.** Per pixel the network sees
  the class embedding of the target covering it (zero outside targets),
  whether one does, the pixel's position inside that box (u, v in [0, 1]:
  it draws an object relative to its box, whatever the box's size), and the
  noise a cold batch would start from (3 channels, so that two images of
  one layout can differ). Three 3x3 convolutions, one dilated, give each
  pixel the context of its box. It is trained and run at ``size`` (the warm
  schedule's first stage is the natural choice); its output is resized to
  the size asked for.
- **Fitted to synthesized images, not to the synthesis losses.** The
  network is fitted (L1 in [0, 1] intensity) to images the recipe made, so
  teaching it costs no teacher pass, only steps of a small network
  (``benchmark.py synth-quality`` counts them as synthesis time; the
  per-batch ``seconds`` of a job's log, as for the bank, do not). With
  ``refill`` every warm batch's refined images teach it too: it learns to
  output what a short schedule makes of its own output, a first-order
  (Reptile-like) meta-update taken in pixel space; the synthesis losses
  act through the refinement only.
  The alternative, training it through the teacher like the images, costs
  a teacher pass per step, which is what it is meant to save.
- **Every target, found or not.** Unlike the bank's crops, the images are
  learnt whole (their background too); the teacher is not asked which
  targets it finds.
- **Determinism.** Weights, minibatches and the training noise come from
  ``seed`` and the images offered, in their order; a job that offers the
  same batches (read back from disk when resumed) holds the same network.
- **Saved with the run** (:meth:`save`, atomically), as the bank is, so
  the on-the-fly hook resumes with the network it had.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdiode.utils.fileio import atomic_open
from .input_space import PixelSpace
from .object_bank import check_rgb_uint8, pixel_box

#: Defaults of ``recombine['amortised']`` (the network and its training).
AMORTISED_DEFAULTS = dict(
    size=64,
    channels=32,
    embed_dim=8,
    max_classes=256,
    steps=20,
    batch_size=16,
    lr=1e-3,
    buffer_size=256,
    seed=0,
    noise=0.0,
    object_noise=0.0)

# Layout channels besides the class embedding: inside a target, u, v.
_LAYOUT_CHANNELS = 3
_NOISE_CHANNELS = 3
# Settings a saved generator must share with the one loading it.
_SAVED_SETTINGS = ('size', 'channels', 'embed_dim', 'max_classes',
                   'buffer_size', 'seed')


class _LayoutToImage(nn.Module):
    """The network: (N, E + 6, h, w) layout and noise -> (N, 3, h, w)
    RGB in [0, 1]."""

    def __init__(self, max_classes: int, embed_dim: int,
                 channels: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(max_classes, embed_dim)
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(embed_dim + _LAYOUT_CHANNELS + _NOISE_CHANNELS, c, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=2, dilation=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, 3, 1))

    def forward(self, label_map: Tensor, layout: Tensor,
                noise: Tensor) -> Tensor:
        """Args:
            label_map (Tensor): (N, h, w) int64 label of the target covering
                each pixel, -1 where none does.
            layout (Tensor): (N, 3, h, w) float: inside a target (0/1), u, v.
            noise (Tensor): (N, 3, h, w) float noise.

        Returns:
            Tensor: (N, 3, h, w) RGB in [0, 1].
        """
        emb = self.embed(label_map.clamp(min=0)).permute(0, 3, 1, 2)
        emb = emb * layout[:, :1]
        return torch.sigmoid(self.body(torch.cat([emb, layout, noise], 1)))


def rasterise_layouts(boxes: Sequence[Tensor], labels: Sequence[Tensor],
                      h: int, w: int) -> Tuple[Tensor, Tensor]:
    """Per-pixel layout maps of a batch (later targets drawn over earlier;
    each box covers the pixels the bank would crop, :func:`pixel_box`).

    Args:
        boxes (Sequence[Tensor]): Per image (K_i, 4) xyxy boxes in pixels.
        labels (Sequence[Tensor]): Per image (K_i,) int64 labels.
        h (int): Map height.
        w (int): Map width.

    Returns:
        tuple[Tensor, Tensor]: (N, h, w) int64 labels (-1 outside targets)
        and (N, 3, h, w) float: inside a target, and the pixel centre's
        position inside its box, u (left to right) and v (top to bottom) in
        [0, 1] (0 outside targets).
    """
    n = len(boxes)
    label_map = torch.full((n, h, w), -1, dtype=torch.int64)
    layout = torch.zeros(n, _LAYOUT_CHANNELS, h, w)
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    for i, (b, lb) in enumerate(zip(boxes, labels)):
        for box, label in zip(b.tolist(), lb.tolist()):
            x0, y0, x1, y1 = pixel_box(box, w, h)
            u = (xs[x0:x1] - box[0]) / max(box[2] - box[0], 1e-6)
            v = (ys[y0:y1] - box[1]) / max(box[3] - box[1], 1e-6)
            label_map[i, y0:y1, x0:x1] = int(label)
            layout[i, 0, y0:y1, x0:x1] = 1.0
            layout[i, 1, y0:y1, x0:x1] = u.clamp(0, 1)[None, :]
            layout[i, 2, y0:y1, x0:x1] = v.clamp(0, 1)[:, None]
    return label_map, layout


class LayoutGenerator:
    """A learned warm-start source: box layout -> image to refine.

    Args:
        size (int): Side of the square images it learns and makes (the
            synthesized images are resized to it). Defaults to 64.
        channels (int): Width of its convolutions. Defaults to 32.
        embed_dim (int): Size of a class's embedding. Defaults to 8.
        max_classes (int): Labels it can embed (0 to ``max_classes - 1``).
            Defaults to 256.
        steps (int): Training steps per offered batch. Defaults to 20.
        batch_size (int): Images per training step, drawn from the buffer.
            Defaults to 16.
        lr (float): Adam learning rate. Defaults to 1e-3.
        buffer_size (int): Images kept to learn from, the newest. Defaults
            to 256.
        seed (int): Seed of its weights, minibatches and training noise.
            Defaults to 0.
        noise (float): Weight of the cold batch's noise (model space, std
            1) added to the network's image outside the targets: 0 starts
            from the network's image alone, which fitting with an L1 loss
            makes smooth; above 0 the start keeps the cold start's texture,
            so that the short schedule grows a cluttered background rather
            than polishing a flat one. Defaults to 0.0.
        object_noise (float): The same inside the targets (the objects the
            network draws). Defaults to 0.0.
    """

    def __init__(self,
                 size: int = 64,
                 channels: int = 32,
                 embed_dim: int = 8,
                 max_classes: int = 256,
                 steps: int = 20,
                 batch_size: int = 16,
                 lr: float = 1e-3,
                 buffer_size: int = 256,
                 seed: int = 0,
                 noise: float = 0.0,
                 object_noise: float = 0.0) -> None:
        for key, value, least in (('size', size, 4),
                                  ('channels', channels, 1),
                                  ('embed_dim', embed_dim, 1),
                                  ('max_classes', max_classes, 1),
                                  ('steps', steps, 0),
                                  ('batch_size', batch_size, 1),
                                  ('buffer_size', buffer_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < least:
                raise ValueError(f'recombine.amortised: {key} must be an int '
                                 f'>= {least}, got {value!r}')
        # lr must be > 0, the noise weights >= 0.
        for key, value, bound in (('lr', lr, '>'), ('noise', noise, '>='),
                                  ('object_noise', object_noise, '>=')):
            if not isinstance(value, (int, float)) or \
                    isinstance(value, bool) or \
                    not (value > 0 if bound == '>' else value >= 0):
                raise ValueError(f'recombine.amortised: {key} must be a '
                                 f'number {bound} 0, got {value!r}')
        self.settings = dict(
            size=size, channels=channels, embed_dim=embed_dim,
            max_classes=max_classes, steps=steps, batch_size=batch_size,
            lr=float(lr), buffer_size=buffer_size, seed=int(seed),
            noise=float(noise), object_noise=float(object_noise))
        self.rng = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.net = _LayoutToImage(max_classes, embed_dim, channels)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        # Learnt images: (3, size, size) float in [0, 1], boxes at size.
        self._images: List[Tensor] = []
        self._boxes: List[Tensor] = []
        self._labels: List[Tensor] = []
        #: Batches offered to it (callers count, as for the bank).
        self.batches = 0
        #: Training steps taken.
        self.steps_taken = 0
        #: Mean L1 error (in [0, 1] intensity) of the last offer's steps.
        self.last_loss = float('nan')

    def __len__(self) -> int:
        """Images it holds to learn from (0: untrained, batches start
        cold)."""
        return len(self._images)

    def classes(self) -> List[int]:
        """The labels of the targets it has learnt, sorted."""
        return sorted({int(v) for lb in self._labels for v in lb.tolist()})

    def describe(self) -> str:
        """What it has learnt from, for a log line."""
        return (f'a generator trained for {self.steps_taken} steps on '
                f'{len(self)} images of classes {self.classes()} from '
                f'{self.batches} batches (L1 {self.last_loss:.3f})')

    def add_found(self, teacher: nn.Module, images: Tensor,
                  boxes: Sequence[Tensor], labels: Sequence[Tensor]) -> int:
        """Learns from synthesized images: adds them to the buffer and
        takes ``steps`` training steps.

        Args:
            teacher (nn.Module): The teacher the images were made for (its
                device is the network's; it is not called).
            images (Tensor): (N, H, W, 3) uint8 RGB images.
            boxes (Sequence[Tensor]): Per image (K_i, 4) xyxy targets in
                pixels of ``images``.
            labels (Sequence[Tensor]): Per image (K_i,) int64 labels.

        Returns:
            int: The number of images added.
        """
        check_rgb_uint8(images)
        for lb in labels:
            if len(lb) and int(torch.as_tensor(lb).max()) >= \
                    self.settings['max_classes']:
                raise ValueError(
                    f'recombine.amortised: label {int(lb.max())} is beyond '
                    f"max_classes={self.settings['max_classes']}; raise it "
                    'to the teacher\'s number of classes')
        size = self.settings['size']
        h, w = images.shape[1:3]
        scale = torch.tensor([size / w, size / h] * 2)
        small = F.interpolate(
            images.permute(0, 3, 1, 2).float() / 255.0,
            size=(size, size), mode='bilinear', align_corners=False,
            antialias=True).clamp_(0, 1)
        for img, b, lb in zip(small, boxes, labels):
            self._images.append(img.cpu())
            self._boxes.append(torch.as_tensor(b).reshape(-1, 4).float().cpu()
                               * scale)
            self._labels.append(torch.as_tensor(lb).cpu())
        keep = self.settings['buffer_size']
        for store in (self._images, self._boxes, self._labels):
            del store[:-keep]
        device = next(teacher.parameters()).device
        self._train(device)
        return len(images)

    def compose(self, background: Tensor, boxes: Sequence[Tensor],
                labels: Sequence[Tensor], space: PixelSpace,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """The network's images for a batch's layouts, from its noise
        (plus ``noise`` times that noise outside the targets and
        ``object_noise`` times it inside).

        Args:
            background (Tensor): (N, 3, h, w) model-space noise (what a
                cold batch starts from); its values feed the network's
                noise channels.
            boxes (Sequence[Tensor]): Per image (K_i, 4) xyxy boxes in
                pixels of ``background``.
            labels (Sequence[Tensor]): Per image (K_i,) int64 labels.
            space (PixelSpace): The teacher's input space.
            generator (torch.Generator, optional): Unused (the noise is the
                background's); kept for the bank's signature.

        Returns:
            Tensor: (N, 3, h, w) model-space images.
        """
        size = self.settings['size']
        h, w = background.shape[-2:]
        scale = torch.tensor([size / w, size / h] * 2)
        label_map, layout = rasterise_layouts(
            [b.detach().cpu().float() * scale for b in boxes],
            [lb.cpu() for lb in labels], size, size)
        noise = F.interpolate(
            background.detach().float(), size=(size, size), mode='bilinear',
            align_corners=False)
        device = background.device
        self.net.to(device)
        with torch.no_grad():
            rgb = self.net(label_map.to(device), layout.to(device), noise)
        if (h, w) != (size, size):
            rgb = F.interpolate(rgb, size=(h, w), mode='bilinear',
                                align_corners=False)
        start = space.to_model(rgb * 255.0).to(background)
        return space.clamp_(start + self._noise_weights(layout, h, w).to(
            background) * background.detach())

    def _noise_weights(self, layout: Tensor, h: int, w: int) -> Tensor:
        """(N, 1, h, w) weight of the start noise per pixel: ``noise``
        outside the targets, ``object_noise`` inside."""
        inside = F.interpolate(layout[:, :1], size=(h, w), mode='nearest')
        return (self.settings['object_noise'] * inside +
                self.settings['noise'] * (1 - inside))

    def save(self, path: str) -> None:
        """Writes the network, its optimizer, buffer and counters to
        ``path``, under a temporary name first."""
        state = dict(
            settings={k: self.settings[k] for k in _SAVED_SETTINGS},
            batches=self.batches,
            steps_taken=self.steps_taken,
            last_loss=self.last_loss,
            net={k: v.cpu() for k, v in self.net.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            rng=self.rng.get_state(),
            images=self._images,
            boxes=self._boxes,
            labels=self._labels)
        with atomic_open(path) as f:
            torch.save(state, f)

    def load(self, path: str) -> None:
        """Replaces everything with what was saved at ``path``.

        Raises:
            ValueError: The file was saved with other settings (or by an
                object bank).
        """
        state = torch.load(path, map_location='cpu', weights_only=True)
        mine = {k: self.settings[k] for k in _SAVED_SETTINGS}
        if state.get('settings') != mine:
            raise ValueError(
                f'{path} holds a warm-start source of other settings '
                f"({state.get('settings', 'an object bank')}, here {mine}); "
                'delete it to train the generator again, or restore those '
                'settings')
        self.net.to('cpu')
        self.net.load_state_dict(state['net'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.rng.set_state(state['rng'])
        self._images = list(state['images'])
        self._boxes = list(state['boxes'])
        self._labels = list(state['labels'])
        self.batches = int(state['batches'])
        self.steps_taken = int(state['steps_taken'])
        self.last_loss = float(state['last_loss'])

    # ------------------------------------------------------------------

    def _train(self, device: torch.device) -> None:
        """``steps`` Adam steps on minibatches drawn from the buffer."""
        s = self.settings
        self.net.to(device)
        self.net.train()
        losses = []
        for _ in range(s['steps']):
            pick = torch.randint(len(self._images), (s['batch_size'], ),
                                 generator=self.rng).tolist()
            target, label_map, layout = self._minibatch(pick)
            noise = torch.randn(len(pick), _NOISE_CHANNELS, s['size'],
                                s['size'], generator=self.rng)
            out = self.net(label_map.to(device), layout.to(device),
                           noise.to(device))
            loss = F.l1_loss(out, target.to(device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.steps_taken += 1
            losses.append(float(loss.detach()))
        if losses:
            self.last_loss = sum(losses) / len(losses)
        self.net.eval()

    def _minibatch(self, pick: Sequence[int]) -> Tuple[Tensor, Tensor, Tensor]:
        size = self.settings['size']
        label_map, layout = rasterise_layouts(
            [self._boxes[i] for i in pick], [self._labels[i] for i in pick],
            size, size)
        return torch.stack([self._images[i] for i in pick]), label_map, layout
