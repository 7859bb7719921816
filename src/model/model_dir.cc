#include "model/model_dir.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/params.h"

namespace wenet_rt {

namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A file train.yaml names: as written (relative paths from the model dir), then the same file
// name in the model dir (paths of the training machine), then the usual names in the dir.
std::optional<fs::path> find_named_file(const fs::path& dir, const std::string& written,
                                        const std::vector<std::string>& usual, std::vector<std::string>& tried) {
  std::vector<fs::path> candidates;
  if (!written.empty()) {
    const fs::path w(written);
    candidates.push_back(w.is_absolute() ? w : dir / w);
    if (w.has_filename()) candidates.push_back(dir / w.filename());
  }
  for (const auto& name : usual) candidates.push_back(dir / name);
  for (const auto& c : candidates) {
    if (is_file(c)) return c;
    if (std::find(tried.begin(), tried.end(), c.string()) == tried.end()) tried.push_back(c.string());
  }
  return std::nullopt;
}

std::string join(const std::vector<std::string>& items, size_t max_items = SIZE_MAX) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > max_items) s += fmt::format(", ... ({} in all)", items.size());
  return s;
}

fs::path find_checkpoint(const fs::path& dir, std::vector<std::string>& notes) {
  if (is_file(dir / "final.pt")) return dir / "final.pt";
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".pt" && is_file(entry.path())) found.push_back(entry.path());
  if (found.empty()) fail("model dir {}: no final.pt (nor any other *.pt checkpoint)", dir.string());
  // The newest one (e.g. avg_10.pt written after epoch_N.pt); the name breaks ties.
  std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
    std::error_code e1, e2;
    const auto ta = fs::last_write_time(a, e1), tb = fs::last_write_time(b, e2);
    return ta != tb ? ta > tb : a.filename() < b.filename();
  });
  if (found.size() > 1) {
    std::vector<std::string> names;
    for (const auto& f : found) names.push_back(f.filename().string());
    notes.push_back(fmt::format("no final.pt; using the newest checkpoint {} (of {})", found[0].filename().string(), join(names, 8)));
  }
  return found[0];
}

void check_weights(const ModelDir& m, const std::map<std::string, HostTensor>& ckpt,
                   const std::map<std::string, Shape>& expected) {
  const std::string& file = m.checkpoint_file;
  std::vector<std::string> missing;
  for (const auto& [name, shape] : expected) {
    const auto it = ckpt.find(name);
    if (it == ckpt.end()) {
      missing.push_back(fmt::format("{} {}", name, shape_str(shape)));
      continue;
    }
    if (it->second.shape() != shape)
      fail("checkpoint {}: tensor '{}' has shape {}, expected {} from {}", file, name, shape_str(it->second.shape()),
           shape_str(shape), m.config_file);
    const DType t = it->second.dtype();
    if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16)
      fail("checkpoint {}: tensor '{}' is {}, expected a floating-point type", file, name, dtype_name(t));
  }
  if (!missing.empty())
    fail("checkpoint {}: missing {} tensor(s) that {} requires: {}", file, missing.size(), m.config_file, join(missing, 5));
  // Position tables are optional, but when present they are what the graph uses: [1, rows, d].
  for (const auto& [name, t] : ckpt) {
    if (!name.ends_with(".pe")) continue;
    const Shape& s = t.shape();
    if (s.size() != 3 || s[0] != 1 || s[1] < 1 || s[2] != m.config.encoder.output_size)
      fail("checkpoint {}: position table '{}' has shape {}, expected [1, positions, {}]", file, name, shape_str(s),
           m.config.encoder.output_size);
  }
  // WeNet 2.0 gave a conformer relative-position attention even with abs_pos; newer WeNet does it
  // when selfattention_layer_type is left at its default. Such a model cannot run as abs_pos.
  const EncoderConfig& e = m.config.encoder;
  if (e.pos_enc == PosEncType::kAbsPos && e.num_blocks > 0 && ckpt.count("encoder.encoders.0.self_attn.linear_pos.weight"))
    fail("checkpoint {}: has relative-position attention weights (self_attn.linear_pos, pos_bias_u/v) but {} says "
         "pos_enc_layer_type abs_pos; relative-position attention with absolute position encoding is not supported",
         file, m.config_file);
}

float max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1e-6f, std::abs(b[i])));
  return worst;
}

void load_cmvn(ModelDir& m, const fs::path& dir, const std::map<std::string, HostTensor>& ckpt) {
  const ModelConfig& c = m.config;
  const int dim = c.encoder.input_dim;
  const auto mean_it = ckpt.find("encoder.global_cmvn.mean");
  const auto istd_it = ckpt.find("encoder.global_cmvn.istd");
  const bool in_ckpt = mean_it != ckpt.end() || istd_it != ckpt.end();
  if (in_ckpt) {
    if (mean_it == ckpt.end() || istd_it == ckpt.end())
      fail("checkpoint {}: has only one of encoder.global_cmvn.mean / istd", m.checkpoint_file);
    for (const auto* t : {&mean_it->second, &istd_it->second})
      if (t->shape() != Shape{dim})
        fail("checkpoint {}: encoder.global_cmvn has shape {}, but input_dim in {} is {}", m.checkpoint_file,
             shape_str(t->shape()), m.config_file, dim);
  }

  std::optional<Cmvn> from_file;
  std::string file_path;
  if (!c.cmvn_file.empty()) {
    std::vector<std::string> tried;
    const auto found = find_named_file(dir, c.cmvn_file, {"global_cmvn"}, tried);
    if (found) {
      file_path = found->string();
      from_file = read_cmvn(file_path, c.is_json_cmvn);
      if (from_file->dim() != size_t(dim))
        fail("cmvn file {}: dimension {}, but input_dim in {} is {}", file_path, from_file->dim(), m.config_file, dim);
    } else if (!in_ckpt) {
      fail("model dir {}: cmvn file '{}' named in {} not found (looked at {})", dir.string(), c.cmvn_file,
           m.config_file, join(tried));
    } else {
      m.notes.push_back(fmt::format("cmvn file '{}' not found; the checkpoint's copy is used", c.cmvn_file));
    }
  }

  if (in_ckpt) {
    const HostTensor mean = mean_it->second.to_f32(), istd = istd_it->second.to_f32();
    m.cmvn.mean.assign(mean.data<float>(), mean.data<float>() + dim);
    m.cmvn.istd.assign(istd.data<float>(), istd.data<float>() + dim);
    m.cmvn_source = m.checkpoint_file + " (encoder.global_cmvn)";
    if (from_file) {
      const float diff = std::max(max_rel_diff(m.cmvn.mean, from_file->mean), max_rel_diff(m.cmvn.istd, from_file->istd));
      if (diff > 1e-4f)
        m.notes.push_back(fmt::format("cmvn file {} differs from the checkpoint's global_cmvn (max relative "
                                      "difference {:.3g}); the checkpoint's values are used", file_path, diff));
    }
  } else if (from_file) {
    m.cmvn = std::move(*from_file);
    m.cmvn_source = file_path;
  } else {
    m.cmvn_source = "none (train.yaml names no cmvn file and the checkpoint has no global_cmvn)";
  }
}

void load_vocab(ModelDir& m, const fs::path& dir) {
  std::vector<std::string> tried;
  const auto found = find_named_file(dir, m.config.units_file, {"units.txt", "lang_char.txt"}, tried);
  if (!found) fail("model dir {}: no vocabulary file (looked at {})", dir.string(), join(tried));
  m.units_file = found->string();
  m.vocab = Vocabulary::load(m.units_file);
  if (m.vocab.size() != m.config.vocab_size)
    fail("units file {}: {} tokens, but output_dim in {} is {} (the size of the output layers, e.g. ctc.ctc_lo)",
         m.units_file, m.vocab.size(), m.config_file, m.config.vocab_size);
}

}  // namespace

ModelDir load_model_dir(const std::string& dir_str) {
  const fs::path dir(dir_str);
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail("model dir {}: not found", dir_str);
  if (!fs::is_directory(dir, ec)) fail("model dir {}: not a directory", dir_str);

  ModelDir m;
  m.path = dir_str;
  m.config_file = (dir / "train.yaml").string();
  if (!is_file(m.config_file)) fail("model dir {}: no train.yaml", dir_str);
  m.config = parse_config(m.config_file);

  m.checkpoint_file = find_checkpoint(dir, m.notes).string();
  std::map<std::string, HostTensor> ckpt = read_checkpoint(m.checkpoint_file);
  const std::map<std::string, Shape> expected = expected_parameters(m.config);
  check_weights(m, ckpt, expected);
  load_cmvn(m, dir, ckpt);
  load_vocab(m, dir);

  for (auto& [name, tensor] : ckpt) {
    const bool position_table = name.ends_with(".pe");  // optional, but exactly what WeNet used
    if (expected.count(name) || position_table) {
      if (!is_buffer(name) && !position_table) m.num_params += tensor.numel();
      m.weights.emplace(name, tensor.dtype() == DType::kF32 ? std::move(tensor) : tensor.to_f32());
    } else if (!is_optional_parameter(name)) {
      m.ignored_keys.push_back(name);
    }
  }
  return m;
}

std::string supported_variants() {
  return "encoder conformer (rel_pos, macaron on/off, conv module on/off, batch_norm/layer_norm) or transformer "
         "(abs_pos); input conv2d/conv2d6/conv2d8; swish/relu; decoder transformer or bitransformer; "
         "causal or non-causal conv module; normalize_before true; full attention (chunk-trained models decode with full context)";
}

std::string describe(const ModelDir& m) {
  std::string s = fmt::format("model dir: {}\nconfig: {}\n{}\n", m.path, m.config_file, describe(m.config));
  s += fmt::format("checkpoint: {}: {} tensors, {} parameters ({:.1f} MB as float32)\n", m.checkpoint_file,
                   m.weights.size(), m.num_params, double(m.num_params) * 4 / 1e6);
  s += fmt::format("cmvn: {}{}\n", m.cmvn_source, m.cmvn.empty() ? "" : fmt::format(", {} dims", m.cmvn.dim()));
  s += fmt::format("units: {}, {} tokens\n", m.units_file, m.vocab.size());
  if (!m.ignored_keys.empty())
    s += fmt::format("ignored checkpoint tensors ({}, not part of the model wenet-rt runs): {}\n", m.ignored_keys.size(),
                     join(m.ignored_keys, 10));
  for (const auto& n : m.notes) s += "note: " + n + "\n";
  s += "supported: " + supported_variants() + "\n";
  return s;
}

}  // namespace wenet_rt
