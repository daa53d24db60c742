"""Breaks the code one way at a time and checks that the tests guarding it fail.

  python -m tests.mutations [INDEX ...]

Each mutation restores a bug (several are the exact pre-fix lines of the library bugs fixed
for the hardening issue) in a copy of the repository, runs the tests that should catch it,
and prints CAUGHT (they failed) or MISSED. A mutation whose target text no longer exists is
reported as STALE: update it with the code. Takes a few minutes; not part of the suite.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1])
# (what breaks, file, text to replace, replacement, tests that must fail)
MUTATIONS = [
 ('guard covers only loss and gradient (old)', 'bigmodels/train/steps.py',
  "GUARDED_STATS = ('stats/train_loss', 'stats/grad_norm', 'stats/update_norm',\n                 'stats/param_norm')",
  "GUARDED_STATS = ('stats/train_loss', 'stats/grad_norm')",
  ['tests/test_steps.py::test_an_infinite_update_from_a_finite_gradient_is_not_accepted',
   'tests/test_faults.py::test_an_infinite_update_stops_the_run_before_it_is_saved',
   'tests/test_cli.py::test_resume_refusals_and_divergence_through_the_command_line']),
 ('decay mask by rank (old)', 'bigmodels/train/optimizer.py',
  "  return jax.tree_util.tree_map_with_path(lambda path, _: _is_decayed(path), params)",
  "  return jax.tree.map(lambda p: p.ndim >= 2, params)",
  ['tests/test_optimizer.py::test_weight_decay_goes_to_kernels_and_embeddings_only']),
 ('logged lr from state.step (old)', 'bigmodels/train/steps.py',
  "'stats/learning_rate': applied_learning_rate(schedule, state.opt_state),",
  "'stats/learning_rate': jnp.asarray(schedule(state.step), jnp.float32),",
  ['tests/test_steps.py::test_a_skipped_step_keeps_the_state_then_training_goes_on']),
 ('eval before the finite check (old)', 'bigmodels/train/loop.py',
  "      window.flush()  # Never evaluate (or plot) a state produced from a non-finite step.\n", "",
  ['tests/test_faults.py::test_an_infinite_update_stops_the_run_before_it_is_saved']),
 ('no TensorBoard purge on a fresh start (old)', 'bigmodels/train/loop.py',
  "    writer.resume_after(0)  # TensorBoard hides the events of any earlier attempt.\n", "",
  ['tests/test_train.py::test_tensorboard_shows_each_step_once_after_a_resume_and_a_fresh_start']),
 ('no TensorBoard purge on resume', 'bigmodels/train/loop.py',
  "        writer.resume_after(step)\n", "",
  ['tests/test_train.py::test_tensorboard_shows_each_step_once_after_a_resume_and_a_fresh_start']),
 ('ETA includes compilation (old)', 'bigmodels/train/loop.py',
  "      meter.restart(done)\n", "      pass\n",
  ['tests/test_train.py::test_end_to_end_tiny_run_writes_every_output']),
 ('config.json keeps preset zeros (old)', 'bigmodels/tasks/text_base.py',
  "    if 'size' in config.model:\n      transformer.resolve_size(config.model)\n", "",
  ['tests/test_train.py::test_config_json_holds_the_values_the_model_was_built_with']),
 ('vocab not lowered to the corpus (old)', 'bigmodels/tasks/text_base.py',
  "      c.model.vocab_size = used\n", "",
  ['tests/test_train.py::test_a_corpus_too_small_for_the_vocabulary_is_said_and_recorded']),
 ('workdir created before checks (old)', 'bigmodels/train/loop.py',
  "  if is_main:\n    check_workdir_writable(workdir)\n", "  if is_main:\n    _create_workdir(workdir)\n",
  ['tests/test_faults.py::test_impossible_values_are_user_errors_that_write_nothing',
   'tests/test_cli.py::test_user_errors_are_one_line_exit_2_and_write_nothing']),
 ('train step drops batch_stats updates', 'bigmodels/train/steps.py',
  "model_state={**state.model_state, **new_model_state})",
  "model_state=state.model_state)",
  ['tests/test_vision.py::test_the_train_step_updates_batchnorm_statistics']),
 ('padding rows weigh 1', 'bigmodels/tasks/classification.py',
  "pad_row={'image': 0, 'label': 0, 'weight': 0.0}", "pad_row={'image': 0, 'label': 0, 'weight': 1.0}",
  ['tests/test_vision.py::test_eval_counts_every_image_once_and_equals_a_hand_computation']),
 ('MLM padding rows get predictions', 'bigmodels/tasks/mlm.py',
  "pad_row = {'tokens': PAD_ID, 'segment_ids': 0}", "pad_row = {'tokens': 7, 'segment_ids': 0}",
  ['tests/test_train.py::test_eval_counts_every_row_once_and_padding_weighs_nothing']),
 ('parameters replicated', 'bigmodels/train/mesh.py',
  "  specs = nn.get_partition_spec(boxed_abstract)\n  return nn.logical_to_mesh_sharding(specs, mesh, logical_rules(mesh_config))",
  "  return jax.tree.map(lambda _: NamedSharding(mesh, PartitionSpec()), nn.unbox(boxed_abstract))",
  ['tests/test_train.py::test_eight_devices_match_one_device_and_really_shard']),
 ('resume ignores checkpoints (restart)', 'bigmodels/train/loop.py',
  "  if ckpt.steps():\n    resume.check_compatible", "  if False:\n    resume.check_compatible",
  ['tests/test_train.py::test_resume_restores_the_checkpoint_and_runs_only_the_remaining_steps']),
 # Language models (issue 9).
 ('decoder attention not causal', 'bigmodels/models/transformer.py',
  "  return segment_attention_mask(segment_ids) & causal[None, None]",
  "  return segment_attention_mask(segment_ids) | causal[None, None]",
  ['tests/test_lm_models.py::test_decoder_logits_at_t_ignore_every_later_token',
   'tests/test_lm_models.py::test_decoder_side_of_the_encoder_decoder_is_causal']),
 ('decoder attention crosses packed documents', 'bigmodels/models/transformer.py',
  "  return segment_attention_mask(segment_ids) & causal[None, None]",
  "  return (segment_ids[:, None, :, None] > 0) & causal[None, None]",
  ['tests/test_lm_models.py::test_packed_documents_never_see_each_other_in_any_model',
   'tests/test_lm_models.py::test_a_packed_document_gives_the_logits_it_gives_alone']),
 ('positions do not restart per document', 'bigmodels/models/transformer.py',
  "  return index - start_index\n", "  return index\n",
  ['tests/test_lm_models.py::test_a_packed_document_gives_the_logits_it_gives_alone']),
 ('LSTM carry not reset at a document start', 'bigmodels/models/lstm.py',
  "    keep = (1.0 - reset).astype(carry[0].dtype)",
  "    keep = jnp.ones_like(reset).astype(carry[0].dtype)",
  ['tests/test_lm_models.py::test_packed_documents_never_see_each_other_in_any_model']),
 ('KV cache index not advanced', 'bigmodels/models/transformer.py',
  "    index.value = index.value + key.shape[1]\n", "",
  ['tests/test_lm_models.py::test_cached_decoding_returns_exactly_the_no_cache_tokens',
   'tests/test_lm_models.py::test_cached_seq2seq_decoding_equals_the_no_cache_decode']),
 ('left padding visible to generation', 'bigmodels/inference/generate.py',
  "  visible = key_valid[:, None, :] | ", "  visible = (key_valid | True)[:, None, :] | ",
  ['tests/test_lm_models.py::test_cached_decoding_returns_exactly_the_no_cache_tokens']),
 ('next-token targets cross documents', 'bigmodels/tasks/causal_lm.py',
  "  same = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] > 0)",
  "  same = segment_ids[:, 1:] > 0",
  ['tests/test_lm_models.py::test_next_token_targets_never_cross_documents_or_predict_padding']),
 ('sentinels do not count down', 'bigmodels/data/spans.py',
  "      sentinel = sentinel_start - span_index", "      sentinel = sentinel_start + 0 * span_index",
  ['tests/test_spans.py::test_sentinels_count_down_in_order_and_the_document_is_recoverable']),
 ('init_fresh patterns ignored', 'bigmodels/train/init_from.py',
  "    if any(fnmatch.fnmatchcase(path, pattern) for pattern in fresh):",
  "    if False:",
  ['tests/test_lm_runs.py::test_init_from_loads_exactly_the_listed_parameters']),
 ('init_from loads nothing', 'bigmodels/train/init_from.py',
  "    if name not in loaded:\n      return leaf", "    if True:\n      return leaf",
  ['tests/test_lm_runs.py::test_init_from_loads_exactly_the_listed_parameters']),
 ('init_from accepts a mismatched shape', 'bigmodels/train/init_from.py',
  "    elif tuple(source[path].shape) != tuple(leaf.shape):", "    elif False:",
  ['tests/test_lm_runs.py::test_init_from_refuses_a_mismatched_shape_or_an_unlisted_new_parameter']),
 # Sweeps and reproductions (issue 10).
 ('finished sweep runs train again', 'bigmodels/sweeps/runs.py',
  "  return status.get('status') == 'done' and status.get('command') == list(run.command)",
  "  return False",
  ['tests/test_sweep.py::test_a_local_sweep_survives_a_kill_and_a_failing_run_and_reports_the_runs',
   'tests/test_reproduce.py::test_reproduce_writes_table_and_chart_and_skips_finished_rows']),
 ('a stopped sweep does not stop its trainings', 'bigmodels/sweeps/runs.py',
  "        process.send_signal(signal.SIGTERM)\n", "        pass\n",
  ['tests/test_sweep.py::test_a_local_sweep_survives_a_kill_and_a_failing_run_and_reports_the_runs']),
 ('best loss taken as the highest', 'bigmodels/sweeps/aggregate.py',
  "    row[f'best_{name}'] = (min if lower_is_better(name) else max)(values)",
  "    row[f'best_{name}'] = max(values)",
  ['tests/test_sweep.py::test_a_local_sweep_survives_a_kill_and_a_failing_run_and_reports_the_runs']),
 ('seed means over every run', 'bigmodels/sweeps/aggregate.py',
  "  keys = [a for a in axes if a != SEED_KEY]\n  groups:",
  "  keys = []\n  groups:",
  ['tests/test_sweep.py::test_a_local_sweep_survives_a_kill_and_a_failing_run_and_reports_the_runs']),
 ('no lock around data preparation', 'bigmodels/data/cache.py',
  "    fcntl.flock(handle, fcntl.LOCK_EX)\n", "",
  ['tests/test_text_data.py::test_processes_preparing_a_fresh_cache_at_once_build_it_once']),
 ('fine-tuning ignores the pre-trained run', 'experiments/reproductions/pretrain_finetune.py',
  "'init_from': source[s.name], 'seed': seed})", "'seed': seed})",
  ['tests/test_reproduce.py::test_mask_rate_pipeline_pretrains_and_fine_tunes_and_reports_the_15_percent_loss']),
 ('held-out rows take the training corruption', 'bigmodels/tasks/mlm.py',
  "                               self.mask_for_eval, pad_row)",
  "                               self.mask, pad_row)",
  ['tests/test_train.py::test_held_out_rows_are_15_percent_mask_only_whatever_the_training_recipe']),
 ('micro-batch gradients normalised by their count', 'bigmodels/train/steps.py',
  "    total = jnp.maximum(sums['weight'], 1.0)\n", "    total = float(k)\n",
  ['tests/test_train.py::test_gradient_accumulation_gives_the_whole_batch_update']),
 ('convolution kernels not sharded', 'bigmodels/models/vision_layers.py',
  "kernel_init=_names(_KERNEL_INIT, None, None, 'embed', 'mlp'),", "kernel_init=_KERNEL_INIT,",
  ['tests/test_vision.py::test_vision_models_on_eight_devices_match_one_device_and_really_shard']),
 ('undivisible dimensions split anyway', 'bigmodels/train/mesh.py',
  "    spec.append(axes if size % shards == 0 else None)", "    spec.append(axes)",
  ['tests/test_vision.py::test_vision_models_on_eight_devices_match_one_device_and_really_shard']),
 ('random transforms keyed by the process, not the global row', 'bigmodels/data/loader.py',
  "      first = index * global_batch_size + process_index * local\n",
  "      first = index * local\n",
  ['tests/test_multiprocess.py::test_two_processes_train_on_the_one_process_batches_and_resume_on_one']),
 ('BERT import with the tanh GELU', 'bigmodels/hf/checkpoint.py',
  "_GELU = {'gelu': False,", "_GELU = {'gelu': True,",
  ['tests/test_hf_interop.py::test_bert_logits_and_mlm_loss_equal_transformers']),
 ('token-type embeddings not added', 'bigmodels/models/bert.py',
  "    x = x + jnp.take(table, types, axis=0).astype(cfg.dtype)\n", "",
  ['tests/test_hf_interop.py::test_bert_logits_and_mlm_loss_equal_transformers']),
 ("GPT-2's fused c_attn split as key, query, value", 'bigmodels/hf/checkpoint.py',
  "      for part, chunk in zip(('query', 'key', 'value'), np.split(value, 3, axis=1)):",
  "      for part, chunk in zip(('key', 'query', 'value'), np.split(value, 3, axis=1)):",
  ['tests/test_hf_interop.py::test_gpt2_logits_and_causal_lm_loss_equal_transformers']),
 ('export drops the MLM bias', 'bigmodels/hf/checkpoint.py',
  "    ('cls.predictions.bias', 'mlm_bias', 'copy'),\n", "",
  ['tests/test_hf_interop.py::test_export_loads_in_transformers_without_warnings_and_round_trips']),
 ('exported tokenizer without SentencePiece normalisation', 'bigmodels/hf/tokenizer.py',
  "  steps = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []",
  "  steps = []",
  ['tests/test_hf_interop.py::test_export_of_a_run_loads_in_transformers_with_equal_logits_and_tokens']),
 ('profile: a fusion is elementwise whatever it computes', 'bigmodels/train/profiling.py',
  "      inner = {KINDS.get(o, 'elementwise') for o in computations.get(calls, [])}",
  "      inner = set()",
  ['tests/test_profiling.py::test_parse_hlo_gives_a_fusion_the_kind_of_the_work_inside_it']),
 ('profile: backward ops counted as forward', 'bigmodels/train/profiling.py',
  "  where = 'backward' if wrapper.startswith('transpose(') else 'forward'",
  "  where = 'forward'",
  ['tests/test_profiling.py::test_summary_of_a_real_trace_attributes_the_time_to_the_code']),
 ('peers: PyTorch not counted as its Flax twin', 'experiments/compare_peers.py',
  "    flops = trainers[name].flops or (", "    flops = trainers[name].flops or 1e9 or (",
  ['tests/test_hf_interop.py::test_peer_comparison_times_every_implementation_side_by_side']),
]


def main() -> None:
  """Runs the chosen mutations (all by default); exit code 1 if any was missed or stale."""
  only = sys.argv[1:]
  bad = 0
  for i, (name, path, old, new, tests) in enumerate(MUTATIONS):
    if only and str(i) not in only:
      continue
    with tempfile.TemporaryDirectory() as tmp:
      dst = os.path.join(tmp, 'repo')
      shutil.copytree(SRC, dst, ignore=shutil.ignore_patterns('.venv', '.git', '__pycache__',
                                                              'runs'))
      text = Path(dst, path).read_text()
      if old not in text:
        print(f'STALE {i}: {name}: {path} no longer holds the target text', flush=True)
        bad += 1
        continue
      Path(dst, path).write_text(text.replace(old, new))
      result = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-x',
                               '-n', '0',
                               *tests], cwd=dst, capture_output=True, text=True)
    why = [l for l in result.stdout.splitlines() if l.startswith(('E ', 'FAILED'))][:2]
    caught = result.returncode not in (0, 4, 5)  # 4/5: bad arguments / no test collected
    bad += not caught
    print(f'{"CAUGHT" if caught else "MISSED"} {i}: {name}: {why}', flush=True)
  sys.exit(1 if bad else 0)


if __name__ == '__main__':
  main()
