// Placeholder so the library has a source until the tokenizer lands.
namespace hybridserve::engine::tokenizer {}
