"""Device mesh and logical-axis sharding rules, both from the `mesh` config."""

from __future__ import annotations

import math
import warnings
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bigmodels.errors import UserError

# `with mesh:` is how flax's logical partitioning finds the mesh in this flax version;
# jax.set_mesh (its suggested replacement) breaks flax's boxed-parameter init here.
warnings.filterwarnings('ignore', message='.*`with mesh:` context manager has been deprecated')


def make_mesh(mesh_config: Any, devices: list | None = None) -> Mesh:
  """Builds a Mesh with axes `mesh.axes` and sizes `mesh.shape` (one -1 = all remaining),
  topology-aware: `jax.experimental.mesh_utils` orders the devices so that the last (most
  communicating) axes stay within the fast interconnect. With `mesh.dcn_shape` (how many
  granules -- TPU slices, else processes -- each axis spans; default all 1), the mesh is
  hybrid: `mesh.shape` / `mesh.dcn_shape` devices per granule over ICI/NVLink, the granules
  over the data-centre network (DCN)."""
  devices = devices if devices is not None else jax.devices()
  axes, shape = tuple(mesh_config.axes), list(mesh_config.shape)
  if len(axes) != len(shape):
    raise UserError(f'mesh.axes {axes} and mesh.shape {tuple(shape)} differ in length')
  if shape.count(-1) > 1:
    raise UserError(f'mesh.shape {tuple(shape)} may hold at most one -1')
  known = math.prod(s for s in shape if s != -1)
  if known <= 0 or len(devices) % known:
    raise UserError(f'mesh.shape {tuple(shape)} does not fit {len(devices)} devices: make the '
                    f'product of its sizes divide {len(devices)}')
  shape = [len(devices) // known if s == -1 else s for s in shape]
  if math.prod(shape) != len(devices):
    raise UserError(f'mesh.shape {tuple(shape)} uses {math.prod(shape)} devices but '
                    f'{len(devices)} are present: adjust mesh.shape (use -1 for one axis)')
  dcn = list(mesh_config.get('dcn_shape', None) or [1] * len(axes))
  if len(dcn) != len(axes) or any(d < 1 or s % d for s, d in zip(shape, dcn)):
    raise UserError(f'mesh.dcn_shape {tuple(dcn)} must have one entry >= 1 per axis of '
                    f'{axes}, each dividing mesh.shape {tuple(shape)}')
  try:
    if math.prod(dcn) > 1:
      ici = [s // d for s, d in zip(shape, dcn)]
      slices = {getattr(d, 'slice_index', 0) for d in devices}  # TPU multi-slice sets these.
      grid = mesh_utils.create_hybrid_device_mesh(
          ici, dcn, devices, process_is_granule=len(slices) == 1,
          allow_split_physical_axes=True)
    else:
      grid = mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
  except (ValueError, AssertionError, NotImplementedError) as e:
    if math.prod(dcn) > 1:
      raise UserError(f'mesh.dcn_shape {tuple(dcn)} does not match the {jax.process_count()} '
                      f'process(es) / slices ({str(e).splitlines()[0][:120]}): make its product '
                      'the number of granules') from None
    grid = np.asarray(devices).reshape(shape)  # A topology mesh_utils does not know.
  return Mesh(grid, axes)


def logical_rules(mesh_config: Any) -> tuple[tuple[str, Any], ...]:
  """The logical-name -> mesh-axis rules, as flax expects them."""
  return tuple((name, tuple(axes) if isinstance(axes, list) else axes)
               for name, axes in mesh_config.rules)


def batch_sharding(mesh: Mesh, mesh_config: Any) -> NamedSharding:
  """Sharding of batch arrays: leading axis over the mesh axes of the 'activation_batch'
  rule."""
  spec = nn.logical_to_mesh_axes(('activation_batch',), logical_rules(mesh_config))
  return NamedSharding(mesh, spec)


def tree_shardings(mesh: Mesh, mesh_config: Any, boxed_abstract: Any) -> Any:
  """NamedShardings for a tree whose leaves may be boxed with logical axis names.

  A dimension the rules give mesh axes that do not divide it (a 1-channel image's first
  convolution, 45 classes over 2 tensor shards) is kept whole instead.
  """
  specs = nn.get_partition_spec(boxed_abstract)
  shardings = nn.logical_to_mesh_sharding(specs, mesh, logical_rules(mesh_config))
  return jax.tree.map(lambda sharding, leaf: _divisible(sharding, leaf.shape), shardings,
                      nn.unbox(boxed_abstract))


def _divisible(sharding: NamedSharding, shape: tuple[int, ...]) -> NamedSharding:
  """`sharding` without the mesh axes of any dimension they do not divide."""
  spec = []
  for size, axes in zip(shape, tuple(sharding.spec) + (None,) * len(shape)):
    names = () if axes is None else axes if isinstance(axes, tuple) else (axes,)
    shards = math.prod(sharding.mesh.shape[a] for a in names)
    spec.append(axes if size % shards == 0 else None)
  return NamedSharding(sharding.mesh, PartitionSpec(*spec))


def replicated(mesh: Mesh) -> NamedSharding:
  """A sharding that places a full copy on every device."""
  return NamedSharding(mesh, PartitionSpec())
