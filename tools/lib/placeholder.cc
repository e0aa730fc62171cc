// Placeholder so the library has a source until the tools land.
namespace hybridserve::tools {}
