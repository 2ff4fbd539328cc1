#include <cstdio>
int main() { std::puts("edgeforge"); return 0; }
