/** Jest: TypeScript through ts-jest; one run covers unit, integration and end-to-end suites. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/connectors', '<rootDir>/src', '<rootDir>/sim'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 30000,
};
