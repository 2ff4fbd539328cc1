// distill: knowledge distillation. The input model is the teacher; the student (the zoo's
// student of the teacher by default, another zoo name, or an ONNX file) is trained on the
// teacher's soft targets with the study's settings (image: CE/KL 0.5/0.5 at T = 1; text: pure
// distillation at T = 2). A zoo student starts from its fresh initialisation, a file from its
// weights. The output is the student.
#include <ATen/ATen.h>

#include <filesystem>

#include "common.h"
#include "edgeforge/error.h"
#include "edgeforge/onnx_io.h"
#include "edgeforge/zoo.h"

namespace edgeforge {
namespace {

std::string zoo_student_of(const std::string& teacher) {
  for (const ZooModelSpec& s : zoo_models())
    if (s.teacher == teacher) return s.name;
  return "";
}

int64_t recipe_int(const Graph& g, const char* key, int64_t fallback) {
  auto it = g.metadata().find(kMetaRecipe);
  if (it == g.metadata().end()) return fallback;
  const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
  return j.is_object() && j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>()
                                                                       : fallback;
}

class Distill : public Strategy {
 public:
  std::string name() const override { return "distill"; }
  std::string summary() const override {
    return "knowledge distillation: train a smaller student on the input model's soft targets";
  }
  std::string needs() const override { return "training data; the input model is the teacher"; }
  std::vector<OptionSpec> options() const override {
    std::vector<OptionSpec> o = {
        {"student", "auto",
         "zoo name or .onnx file of the student (auto: the zoo student of the teacher)", nullptr}};
    for (OptionSpec& s : strategies::training_options(
             "training epochs (auto: the zoo student's recipe, 2 images, 1 text)",
             "peak learning rate (auto: the zoo student's, 0.1 SGD images, 1e-3 AdamW text)"))
      o.push_back(std::move(s));
    return o;
  }

  Graph apply(const Graph& teacher, const StrategyOptions& opts, StrategyContext& ctx,
              nlohmann::json& report) const override {
    const std::string modality = strategies::model_modality(teacher, opts.text("dataset"));
    std::string student_name = opts.text("student");
    const auto teacher_zoo = teacher.metadata().find(kMetaModel);
    if (student_name == "auto") {
      EF_CHECK(teacher_zoo != teacher.metadata().end() && !zoo_student_of(teacher_zoo->second).empty(),
               "distill: model '", teacher.name(),
               "' is not a zoo teacher, so it has no default student; set student=NAME|FILE.onnx");
      student_name = zoo_student_of(teacher_zoo->second);
    }
    Graph student;
    std::string student_zoo;
    if (student_name.size() > 5 && student_name.substr(student_name.size() - 5) == ".onnx") {
      student = load_onnx(student_name);
      auto z = student.metadata().find(kMetaModel);
      student_zoo = z == student.metadata().end() ? "" : z->second;
    } else {
      const ZooModelSpec& spec = zoo_model(student_name);  // Error listing zoo models
      EF_CHECK(spec.modality == modality, "distill: student '", student_name, "' (",
               spec.modality, " model) does not fit teacher '", teacher.name(), "' (", modality,
               " model)");
      ZooBuildOptions build;
      build.seed = ctx.seed;
      build.vocab_size = recipe_int(teacher, "vocab_size", 8000);
      build.seq_len = model_seq_len(teacher);
      student = build_zoo_model(student_name, build);
      student_zoo = student_name;
    }
    // The student reads the teacher's inputs: same data set, preprocessing and tokenizer.
    for (const char* key : {kMetaDataset, kMetaPreprocess, kMetaTokenizer, kMetaLabels}) {
      auto it = teacher.metadata().find(key);
      if (it != teacher.metadata().end()) student.metadata()[key] = it->second;
    }
    if (!student_zoo.empty()) student.metadata()[kMetaModel] = student_zoo;
    EF_CHECK(student.inputs().size() == teacher.inputs().size(), "distill: the student takes ",
             student.inputs().size(), " inputs, the teacher ", teacher.inputs().size());
    for (size_t i = 0; i < student.inputs().size(); ++i)
      EF_CHECK(student.inputs()[i].name == teacher.inputs()[i].name, "distill: student input '",
               student.inputs()[i].name, "' does not match teacher input '",
               teacher.inputs()[i].name, "'");

    const TaskData data = strategies::training_data(teacher, opts, ctx);
    const int64_t teacher_classes = strategies::output_classes(teacher, data);
    const int64_t student_classes = strategies::output_classes(student, data);
    EF_CHECK(teacher_classes == student_classes, "distill: the teacher '", teacher.name(),
             "' predicts ", teacher_classes, " classes but the student '", student_name,
             "' predicts ", student_classes);

    const bool zoo = !student_zoo.empty();
    const TrainRecipe zoo_recipe = zoo ? default_recipe(student_zoo) : TrainRecipe{};
    const int default_epochs = zoo ? zoo_recipe.epochs : (modality == "image" ? 2 : 1);
    const double default_lr = zoo ? zoo_recipe.lr : (modality == "image" ? 0.1 : 1e-3);
    TrainRecipe recipe = strategies::finetune_recipe(modality, opts, default_epochs, default_lr, ctx);
    const strategies::KdSettings kd = strategies::kd_settings(modality, opts);
    TrainHooks hooks;
    hooks.loss = strategies::distillation_hook(
        strategies::teacher_logits(teacher, data, ctx.threads), kd);
    if (ctx.log)
      ctx.log("distill: training " + student_name + " on " + std::to_string(data.size()) +
              " samples for " + std::to_string(recipe.epochs) + " epochs (alpha " +
              std::to_string(kd.alpha).substr(0, 4) + ", T " +
              std::to_string(kd.temperature).substr(0, 4) + ")");
    const TrainReport tr = train_graph(student, data, recipe, ctx.progress, hooks);
    recipe.train_limit = data.size();
    student.metadata()[kMetaRecipe] = recipe.to_json();
    report["student"] = student_name;
    report["teacher_parameters"] = teacher.parameter_count();
    report["student_parameters"] = student.parameter_count();
    report["epochs"] = recipe.epochs;
    report["first_loss"] = tr.first_loss;
    report["final_loss"] = tr.final_loss;
    report["train_samples"] = data.size();
    return student;
  }
};

}  // namespace
EF_REGISTER_STRATEGY(Distill);
}  // namespace edgeforge
