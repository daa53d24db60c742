"""The profile summary: XLA op times from a real jax.profiler trace, attributed to the kind of
work and to the model code (forward / backward / outside the model)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from bigmodels.train import profiling


@pytest.mark.parametrize('op_name, expected', [
    ('jit(train_step)/transpose(jvp(BertMLM))/encoder/layer_1/mlp/wo/dot_general',
     ('backward', 'BertMLM/encoder/layer_*/mlp/wo')),
    ('jit(train_step)/jvp(DecoderLM)/decoder/layer_0/attention/key/add',
     ('forward', 'DecoderLM/decoder/layer_*/attention/key')),
    ('jit(train_step)/jvp()/log', ('forward', 'loss (task code)')),
    ('jit(train_step)/optimizer/mul', ('outside the model', 'optimizer')),
    ('jit(train_step)/div', ('outside the model', 'train step (div)')),
    ('', ('outside the model', '(no op_name: inserted by XLA)')),
])
def test_code_location_folds_layers_and_tells_the_pass(op_name, expected):
  assert profiling.code_location(op_name) == expected


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(1024, name='wide')(jnp.tanh(x))


def test_summary_of_a_real_trace_attributes_the_time_to_the_code(tmp_path):
  net = _Net()
  x = jnp.ones((128, 1024))
  params = net.init(jax.random.key(0), x)

  @jax.jit
  def step(params, x):
    grads = jax.grad(lambda p: (net.apply(p, x) ** 2).mean())(params)
    with jax.named_scope('optimizer'):
      return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

  compiled = step.lower(params, x).compile()
  params = compiled(params, x)
  with jax.profiler.trace(str(tmp_path)):
    for _ in range(3):
      params = compiled(params, x)
    jax.block_until_ready(params)
  summary = profiling.summarize(compiled.as_text(), tmp_path, steps=3)
  kinds = dict(summary.by_kind)
  locations = {(where, path): s for where, path, s in summary.by_location}
  assert summary.op_seconds_per_step > 0
  assert sum(kinds.values()) == pytest.approx(summary.op_seconds_per_step)
  # The Dense layer's products. (Their share of the time depends on the machine's load, so it is
  # not asserted; test_parse_hlo_... checks how fusions get their kind.)
  assert kinds['matmul'] > 0
  assert locations[('forward', '_Net/wide')] > 0 and locations[('backward', '_Net/wide')] > 0
  assert ('outside the model', 'optimizer') in locations
  lines = profiling.format_summary(summary)
  assert any(line.startswith('| matmul |') for line in lines)
  assert any('| backward | _Net/wide |' in line for line in lines)
  with pytest.raises(FileNotFoundError, match='no .xplane.pb trace'):
    profiling.summarize(compiled.as_text(), tmp_path / 'nothing', steps=1)


HLO = """HloModule jit_step, is_scheduled=true

%fused_computation.1 (param_0.1: f32[8,16], param_1.1: f32[16,4]) -> f32[8,4] {
  %param_0.1 = f32[8,16]{1,0} parameter(0)
  %param_1.1 = f32[16,4]{1,0} parameter(1)
  ROOT %dot.1 = f32[8,4]{1,0} dot(%param_0.1, %param_1.1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_computation.2 (param_0.2: f32[8,4]) -> f32[8,4] {
  %param_0.2 = f32[8,4]{1,0} parameter(0)
  ROOT %tanh.2 = f32[8,4]{1,0} tanh(%param_0.2)
}

ENTRY %main.9 (x: f32[8,16], w: f32[16,4]) -> f32[8,4] {
  %x = f32[8,16]{1,0} parameter(0)
  %w = f32[16,4]{1,0} parameter(1)
  %ynn_fusion.1 = f32[8,4]{1,0} fusion(%x, %w), kind=kCustom, calls=%fused_computation.1, metadata={op_name="jit(step)/jvp(Net)/dense/dot_general" stack_frame_id=1}
  %copy.3 = f32[8,4]{0,1} copy(%ynn_fusion.1), metadata={op_name="jit(step)/jvp(Net)/transpose"}
  ROOT %tanh_fusion = f32[8,4]{1,0} fusion(%copy.3), kind=kLoop, calls=%fused_computation.2, metadata={op_name="jit(step)/optimizer/tanh"}
}
"""


def test_parse_hlo_gives_a_fusion_the_kind_of_the_work_inside_it():
  ops = profiling.parse_hlo(HLO)
  assert ops['ynn_fusion.1'] == profiling.Op('matmul', 'jit(step)/jvp(Net)/dense/dot_general')
  assert ops['copy.3'].kind == 'copy/transpose'
  assert ops['tanh_fusion'] == profiling.Op('elementwise', 'jit(step)/optimizer/tanh')
  assert ops['dot.1'].kind == 'matmul' and 'main.9' not in ops
