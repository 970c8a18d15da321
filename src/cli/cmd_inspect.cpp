// `tinyvlm inspect CKPT`: what a checkpoint holds (format, kind, metadata, every tensor's dtype and shape),
// for safetensors and torch.save files alike, without loading any weights.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "io/parquet_inspect.h"
#include "io/tensor_source.h"
#include "model/checkpoint.h"

namespace tv::cli {
namespace {

struct InspectArgs {
  std::string path, match;
  bool json = false;
};

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// A metadata value on one line: the first line of it, cut to `width` characters, and its size if cut.
std::string one_line(const std::string& v, size_t width) {
  const size_t eol = v.find('\n');
  std::string s = v.substr(0, std::min(eol, width));
  if (s.size() < v.size()) s += " ... (" + std::to_string(v.size()) + " characters)";
  return s;
}

void run_inspect(const InspectArgs& a) {
  if (a.path.size() >= 8 && a.path.compare(a.path.size() - 8, 8, ".parquet") == 0) {  // a dataset file
    std::fputs(pq::inspect_text(a.path, a.json).c_str(), stdout);
    return;
  }
  std::unique_ptr<TensorSource> f = open_tensor_file(a.path);
  std::vector<std::string> names;
  for (const std::string& n : f->names())
    if (a.match.empty() || n.find(a.match) != std::string::npos) names.push_back(n);
  int64_t values = 0;
  for (const std::string& n : names) values += numel_of(f->shape(n));

  if (a.json) {
    nlohmann::ordered_json j;
    j["path"] = a.path;
    j["format"] = f->format();
    j["kind"] = checkpoint_kind(*f);
    j["metadata"] = f->metadata();
    j["tensors"] = nlohmann::ordered_json::array();
    for (const std::string& n : names)
      j["tensors"].push_back({{"name", n}, {"dtype", f->dtype_name(n)}, {"shape", f->shape(n)}});
    j["values"] = values;
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("%s: %s, %zu tensors%s, %lld values\n", a.path.c_str(), f->format(), names.size(),
              a.match.empty() ? "" : (" matching '" + a.match + "'").c_str(), (long long)values);
  std::printf("  kind: %s\n", checkpoint_kind(*f).c_str());
  for (const auto& [k, v] : f->metadata()) std::printf("  metadata %s = %s\n", k.c_str(), one_line(v, 72).c_str());
  int dw = 0, sw = 0;  // column widths
  for (const std::string& n : names) {
    dw = std::max(dw, int(f->dtype_name(n).size()));
    sw = std::max(sw, int(shape_str(f->shape(n)).size()));
  }
  for (const std::string& n : names)
    std::printf("  %-*s  %-*s  %s\n", dw, f->dtype_name(n).c_str(), sw, shape_str(f->shape(n)).c_str(), n.c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "List a checkpoint's tensors (dtype, shape) and metadata: safetensors or torch.save (.pt); or a .parquet "
      "file's schema, row groups, rows and codecs");
  cmd->add_option("checkpoint", a->path, "The file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--match", a->match, "Only tensors whose name contains this text");
  cmd->add_flag("--json", a->json, "One JSON object: path, format, kind, metadata, tensors [{name, dtype, shape}], values");
  cmd->callback([a] { run_inspect(*a); });
}

}  // namespace tv::cli
