/** Jest: TypeScript through ts-jest; one run covers unit, integration and end-to-end suites. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/connectors', '<rootDir>/src', '<rootDir>/sim'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 30000,
  // Probes PostgreSQL and Redis once, so a suite can mark its tests skipped when they are missing (test/support/services.ts servicesIt).
  globalSetup: '<rootDir>/test/support/global-setup.ts',
};
