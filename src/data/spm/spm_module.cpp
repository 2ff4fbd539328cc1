// placeholder: the SentencePiece module (see CMakeLists.txt)
extern "C" int edgeforge_spm_abi_version() { return 1; }
