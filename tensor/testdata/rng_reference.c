/* Independent C reference for tensor/rand.go (xoshiro256** seeded by
   splitmix64; Marsaglia polar normals with a series logarithm). Its
   output is the golden data of TestRNGReference.
   Build: gcc -O2 -ffp-contract=off -o /tmp/rngref rng_reference.c -lm */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

static uint64_t s[4];

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next(void) {
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static void seed(uint64_t x) {
	for (int i = 0; i < 4; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		s[i] = z ^ (z >> 31);
	}
}

static double uniform(void) { return (double)(next() >> 11) * 0x1p-53; }

static double series_log(double x) {
	int e;
	double m = frexp(x, &e);
	if (m < M_SQRT1_2) { m *= 2; e--; }
	double t = (m - 1) / (m + 1), t2 = t * t, sum = 0;
	for (int k = 23; k >= 1; k -= 2) sum = sum * t2 + 1.0 / k;
	return e * 6.93147180369123816490e-01 + (2 * t * sum + e * 1.90821492927058770002e-10);
}

int main(void) {
	seed(42);
	for (int i = 0; i < 6; i++) printf("%llu\n", (unsigned long long)next());
	seed(7);
	for (int i = 0; i < 6; i++) {
		double u, v, q;
		do { u = 2 * uniform() - 1; v = 2 * uniform() - 1; q = u * u + v * v; } while (q >= 1 || q == 0);
		double f = sqrt(-2 * series_log(q) / q);
		printf("%a\n%a\n", u * f, v * f);
	}
	return 0;
}
